"""A spec that cannot be locked or built is an error before anything runs: a clear message that
names the problem and the fix, exit code 2, no run recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from envtools import runs


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["environment.pip=[nonexistent-pkg-xyz]"], ["nonexistent-pkg-xyz", "not on the package index", "hint:"]),
        (['environment.pip=["six==999.1"]'], ["six==999.1", "no version", "hint:"]),
        (['environment.pip=["scikit-learn=1.7"]'], ["'scikit-learn=1.7' is not a valid requirement", "hint:"]),
        (["environment.python=3.99", "environment.pip=[six]"], ["Python 3.99 is not available", "hint:"]),
        (["environment.python=3.5"], ["Python 3.5 is not supported", "hint:"]),
        (["environment=system", "environment.python=3.99"], ["asks for Python 3.99", "build: venv"]),
        (
            ["environment=system", 'environment.pip=["nonexistent-pkg-xyz>=1"]'],
            ["nonexistent-pkg-xyz>=1 (not installed)", "environment.build=venv"],
        ),
    ],
    ids=[
        "unknown-package",
        "unknown-version",
        "conda-syntax",
        "python-missing",
        "python-too-old",
        "system-python",
        "system-missing",
    ],
)
def test_bad_spec_fails_before_the_run(mltrain, cli_json, overrides: list[str], expected: list[str]) -> None:
    proc = mltrain(*overrides)
    assert proc.returncode == 2, proc.output
    assert "Traceback" not in proc.stderr
    for text in expected:
        assert text in proc.stderr, proc.output
    assert runs(cli_json) == []


def test_conda_only_package_fails_before_the_run(project: Path, mltrain, cli_json) -> None:
    (project / "env.yml").write_text("dependencies:\n  - python=3.11\n  - scikit-learn\n  - mkl=2023\n")
    proc = mltrain("environment.conda_file=env.yml")
    assert proc.returncode == 2, proc.output
    assert "'mkl=2023' is a conda-only package" in proc.stderr
    assert "remove mkl from the conda file" in proc.stderr
    assert runs(cli_json) == []


def test_conda_name_missing_on_pypi_says_where_it_came_from(project: Path, mltrain, cli_json) -> None:
    (project / "env.yml").write_text("dependencies:\n  - nonexistent-conda-pkg-xyz=1.0\n")
    proc = mltrain("environment.conda_file=env.yml")
    assert proc.returncode == 2, proc.output
    assert "nonexistent-conda-pkg-xyz (from" in proc.stderr and "env.yml" in proc.stderr
    assert "pip: section" in proc.stderr
    assert runs(cli_json) == []


def test_missing_requirements_file(mltrain, cli_json) -> None:
    proc = mltrain("environment.requirements_file=nope.txt")
    assert proc.returncode == 2, proc.output
    assert "requirements_file" in proc.stderr and "nope.txt does not exist" in proc.stderr
    assert runs(cli_json) == []
