"""The helper on an SSH host runs without ``site`` (``python -S``): what its probe says about pip is
still what the interpreter says when it starts as usual (mltrain.remote.ssh_probe.has_pip)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mltrain.bundled import package_dir

BASE = getattr(sys, "_base_executable", sys.executable)


def _has_pip(python: str, *flags: str) -> bool:
    """has_pip() as the helper computes it, in ``python`` started with ``flags``."""
    code = "import sys; sys.path.insert(0, sys.argv[1]); from mltrain.remote.ssh_probe import has_pip; print(has_pip())"
    out = subprocess.run([python, *flags, "-c", code, str(package_dir().parent)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip() == "True"


def _imports_pip(python: str) -> bool:
    return subprocess.run([python, "-c", "import pip"], capture_output=True).returncode == 0


@pytest.mark.parametrize("system_site", [False, True], ids=["own-packages", "system-site-packages"])
def test_a_helper_without_site_says_whether_its_interpreter_has_pip(tmp_path: Path, system_site: bool) -> None:
    if not _imports_pip(BASE):
        pytest.skip("the base interpreter has no pip")
    assert _has_pip(BASE, "-S") is True
    venv = tmp_path / "venv"
    flags = ["--system-site-packages"] if system_site else []
    subprocess.run([BASE, "-m", "venv", "--without-pip", *flags, str(venv)], check=True)
    python = str(venv / "bin" / "python")
    assert _imports_pip(python) is system_site  # a venv sees the base's pip only with system site packages
    assert _has_pip(python, "-S") is system_site
    assert _has_pip(python) is system_site
