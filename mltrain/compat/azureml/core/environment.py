"""``azureml.core.Environment``: mapped onto mltrain's ``environment`` config group.

``Environment.get(ws, NAME)`` takes Azure's curated scikit-learn environments (``AzureML-Tutorial``,
``AzureML-sklearn-*``: mltrain's curated ``sklearn``) and the options of ``conf/environment``;
``from_conda_specification`` and ``from_pip_requirements`` read files as ``environment.conda_file`` and
``environment.requirements_file`` do; ``python.conda_dependencies`` (a CondaDependencies) is written as
a conda file in the workspace when the run is submitted.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ._api import mltrain_api, quoted
from ._unsupported import unsupported
from .conda_dependencies import CondaDependencies

CURATED = {"AzureML-Tutorial": "sklearn"}  # Azure's curated environments of its scikit-learn samples
CURATED_PREFIXES = {"AzureML-sklearn-": "sklearn"}  # e.g. AzureML-sklearn-1.0-ubuntu20.04-py38-cpu


class PythonSection:
    """``env.python``: the conda dependencies, or the interpreter as it is (``user_managed_dependencies``)."""

    def __init__(self) -> None:
        self.conda_dependencies: CondaDependencies | None = None
        self.user_managed_dependencies = False
        self.interpreter_path: str | None = None


class DockerSection:
    """``env.docker``: a base image builds the environment as a Docker image (``environment.build=docker``)."""

    def __init__(self) -> None:
        self.enabled = False
        self.base_image: str | None = None
        self.base_dockerfile: str | None = None


class Environment:
    """An environment a ScriptRunConfig runs in."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        self.name = name
        self.version: str | None = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables: dict[str, str] = {}
        self._option: str | None = None  # an option of conf/environment
        self._files: dict[str, str] = {}  # conda_file / requirements_file

    # -- constructors -------------------------------------------------------------------------------
    @staticmethod
    def list_names() -> list[str]:
        """mltrain's environment configs (and the project's)."""
        return list(mltrain_api("Environment.get").config_options("environment"))

    @staticmethod
    def get(workspace: Any, name: str, version: str | None = None, label: str | None = None) -> Environment:
        """Azure's curated scikit-learn environments, or an environment config of ``conf/environment``."""
        option = CURATED.get(name) or next((o for p, o in CURATED_PREFIXES.items() if name.startswith(p)), None)
        options = Environment.list_names()
        if option is None and name in options:
            option = name
        if option is None:
            known = [*CURATED, *(p + "*" for p in CURATED_PREFIXES), *options]
            raise unsupported(
                f"Environment.get(name={name!r})",
                f"known environments: {', '.join(known)} (or declare it in conf/environment/{name}.yaml)",
            )
        env = Environment(name)
        env._option = option
        env.version = version
        return env

    @staticmethod
    def from_conda_specification(name: str, file_path: str | os.PathLike[str]) -> Environment:
        env = Environment(name)
        env._files["conda_file"] = _existing(file_path, "from_conda_specification")
        return env

    @staticmethod
    def from_pip_requirements(name: str, file_path: str | os.PathLike[str], pip_version: Any = None) -> Environment:
        env = Environment(name)
        env._files["requirements_file"] = _existing(file_path, "from_pip_requirements")
        return env

    @staticmethod
    def list(workspace: Any) -> dict[str, Environment]:
        return {name: Environment.get(workspace, name) for name in Environment.list_names()}

    def register(self, workspace: Any) -> Environment:
        raise unsupported(
            "Environment.register",
            "an environment is declared by a config of conf/environment (or used as is by ScriptRunConfig); "
            "its builds are cached by content and listed by `mltrain envs list`",
        )

    # -- what a run gets ----------------------------------------------------------------------------
    def overrides(self, workspace_root: Path) -> list[str]:
        """The overrides that select this environment for a run recorded in ``workspace_root``."""
        deps = self.python.conda_dependencies
        if self._option is not None:
            out = [f"environment={self._option}"]
        elif self.python.user_managed_dependencies:
            out = ["environment=system", f"environment.name={quoted(self.name)}"]
        elif "requirements_file" in self._files:
            out = [
                "environment=sklearn",
                f"environment.name={quoted(self.name)}",
                "environment.pip=[]",
                f"environment.requirements_file={quoted(self._files['requirements_file'])}",
            ]
        else:
            conda = self._files.get("conda_file") or _write_conda(deps or CondaDependencies(), workspace_root)
            out = [
                "environment=conda",
                f"environment.name={quoted(self.name)}",
                f"environment.conda_file={quoted(conda)}",
            ]
        if self._option is None:
            out.append(
                "environment.version=null" if self.version is None else f"environment.version={quoted(self.version)}"
            )
        if self.docker.base_image:
            out += ["environment.build=docker", f"environment.docker.base_image={quoted(self.docker.base_image)}"]
        out += [f"++environment.env_vars.{k}={quoted(v)}" for k, v in self.environment_variables.items()]
        return out

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise unsupported(f"Environment.{name}", "declare what an environment needs in conf/environment/NAME.yaml")

    def __repr__(self) -> str:
        return f"Environment(name={self.name!r})"


def _existing(path: str | os.PathLike[str], what: str) -> str:
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise FileNotFoundError(f"Environment.{what}: {p} does not exist")
    return str(p)


def _write_conda(deps: CondaDependencies, workspace_root: Path) -> str:
    """The conda file of ``deps`` in the workspace (named by its content, written once)."""
    text = deps.serialize_to_string()
    folder = workspace_root / "azureml" / "conda"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.yml"
    if not path.is_file():
        path.write_text(text)
    return str(path)
