"""Azure-style conda environment files: read into a Python version and PyPI requirements, built
with uv, used by a job; the curated ``conda`` environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from envtools import current_python, probed, runs, write_conf

from mltrain.environments.conda import read_conda_file
from mltrain.environments.spec import EnvSpec
from mltrain.errors import EnvironmentSpecError

AZURE_STYLE = """\
name: project_environment
channels:
  - conda-forge
  - defaults
dependencies:
  - python=3.10.13
  - conda-forge::numpy=1.26
  - pandas 2.2.3 py310h5eee18b_0
  - scikit-learn>=1.3,<1.6
  - pytorch
  - __glibc>=2.17
  - pip
  - pip:
      - azureml-defaults
      - -r extra-requirements.txt
"""


def test_a_conda_file_becomes_a_python_version_and_pypi_requirements(tmp_path: Path) -> None:
    (tmp_path / "extra-requirements.txt").write_text("# extras\nrich==13.7.1  # pretty output\n")
    path = tmp_path / "env.yml"
    path.write_text(AZURE_STYLE)
    spec = read_conda_file(path)
    assert spec.python == "3.10"
    assert spec.requirements == (
        "numpy==1.26.*",  # conda "=1.26" means any 1.26.x
        "pandas==2.2.3",  # version, then a build string
        "scikit-learn>=1.3,<1.6",
        "torch",  # the conda name differs from the PyPI one
        "azureml-defaults",
        "rich==13.7.1",  # -r is read relative to the conda file
    )


def test_a_conda_only_package_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "env.yml"
    path.write_text("dependencies:\n  - python=3.11\n  - numpy\n  - cudatoolkit=11.8\n")
    with pytest.raises(EnvironmentSpecError) as info:
        EnvSpec.from_config({"name": "gpu", "build": "venv", "conda_file": str(path)})
    assert "cudatoolkit" in str(info.value) and "conda-only" in str(info.value)
    assert info.value.hint and "remove cudatoolkit" in info.value.hint


def test_python_in_the_config_and_in_the_conda_file_must_agree(tmp_path: Path) -> None:
    path = tmp_path / "env.yml"
    path.write_text("dependencies:\n  - python=3.10\n  - six\n")
    with pytest.raises(EnvironmentSpecError, match="differs"):
        EnvSpec.from_config({"name": "x", "build": "venv", "python": "3.12", "conda_file": str(path)})


@pytest.mark.slow
def test_a_job_runs_in_an_environment_from_a_conda_file(project: Path, probe_job: str, mltrain, cli_json) -> None:
    (project / "environment.yml").write_text(
        f"name: tiny\ndependencies:\n  - python={current_python()}\n  - six=1.17\n  - pip\n"
        "  - pip:\n      - tomli==2.2.1\n"
    )
    write_conf(
        project, "environment", "fromconda", {"name": "fromconda", "build": "venv", "conda_file": "environment.yml"}
    )
    proc = mltrain("environment=fromconda", probe_job, "job.args=[six,tomli]")
    assert proc.returncode == 0, proc.output
    found = probed(proc.stdout)
    assert found["six"].startswith("1.17.") and found["tomli"] == "2.2.1"
    assert runs(cli_json)[0]["status"] == "Completed"


@pytest.mark.slow
def test_the_curated_conda_environment_trains_iris(project: Path, mltrain, cli_json) -> None:
    from mltrain.cli.envs import compose_environment

    conda = EnvSpec.from_config(compose_environment("conda", []))
    sklearn = EnvSpec.from_config(compose_environment("sklearn", []))
    assert conda.name == "sklearn-conda" and conda.sources["conda_file"].endswith("examples/iris/conda.yml")
    assert sorted(conda.requirements) == sorted(sklearn.requirements)  # so both share one lock and one venv
    proc = mltrain("environment=conda")
    assert proc.returncode == 0, proc.output
    run = runs(cli_json)[0]
    assert run["status"] == "Completed" and run["env_name"] == "sklearn-conda"
    assert cli_json("models", "list")[0]["name"] == "sklearn-iris"
