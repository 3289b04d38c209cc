"""``azureml.core.conda_dependencies.CondaDependencies``: a conda specification, written as the conda
YAML file mltrain's environments read (``environment.conda_file``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _quoted(item: str) -> str:
    return f'"{item}"' if any(c in item for c in ":#{}[],&*!|>'\"%@`") else item


class CondaDependencies:
    """Python version, conda packages (by their PyPI names), pip packages and channels."""

    def __init__(self, conda_dependencies_file_path: str | os.PathLike[str] | None = None, **kwargs: Any) -> None:
        self.name = "project_environment"
        self.python_version: str | None = None
        self._conda: list[str] = []
        self._pip: list[str] = []
        self._channels: list[str] = ["conda-forge"]
        if conda_dependencies_file_path is not None:
            self._read(Path(conda_dependencies_file_path))

    @staticmethod
    def create(
        pip_packages: list[str] | None = None,
        conda_packages: list[str] | None = None,
        python_version: str | None = None,
        pin_sdk_version: bool = True,
        pip_indexurl: str | None = None,
        **kwargs: Any,
    ) -> CondaDependencies:
        deps = CondaDependencies()
        deps.python_version = python_version
        for p in conda_packages or []:
            deps.add_conda_package(p)
        for p in pip_packages or []:
            deps.add_pip_package(p)
        return deps

    def _read(self, path: Path) -> None:
        """The packages of an existing conda file (name, channels, python=, packages, pip:)."""
        import yaml  # installed with mltrain (reading a conda file is a notebook's job, not a script's)

        doc = yaml.safe_load(path.read_text()) or {}
        self.name = str(doc.get("name") or self.name)
        for channel in doc.get("channels") or []:
            self.add_channel(str(channel))
        for dep in doc.get("dependencies") or []:
            if isinstance(dep, dict):
                for p in dep.get("pip") or []:
                    self.add_pip_package(str(p))
            elif str(dep) != "pip":
                self.add_conda_package(str(dep))

    def add_conda_package(self, conda_package: str) -> None:
        if conda_package.split("=")[0] == "python":
            self.python_version = conda_package.split("=", 1)[1] if "=" in conda_package else None
        elif conda_package not in self._conda:
            self._conda.append(conda_package)

    def add_pip_package(self, pip_package: str) -> None:
        if pip_package not in self._pip:
            self._pip.append(pip_package)

    def add_channel(self, channel: str) -> None:
        if channel not in self._channels:
            self._channels.append(channel)

    def set_python_version(self, version: str) -> None:
        self.python_version = version

    @property
    def conda_packages(self) -> list[str]:
        return list(self._conda)

    @property
    def pip_packages(self) -> list[str]:
        return list(self._pip)

    def serialize_to_string(self) -> str:
        lines = [f"name: {self.name}", "channels:", *(f"  - {c}" for c in self._channels), "dependencies:"]
        if self.python_version:
            lines.append(f"  - python={self.python_version}")
        lines += [f"  - {_quoted(p)}" for p in self._conda]
        if self._pip:
            lines += ["  - pip", "  - pip:", *(f"    - {_quoted(p)}" for p in self._pip)]
        return "\n".join(lines) + "\n"

    def save(self, path: str | os.PathLike[str] | None = None) -> str:
        target = Path(path or "conda_dependencies.yml")
        target.write_text(self.serialize_to_string())
        return str(target)

    save_to_file = save

    def __repr__(self) -> str:
        return self.serialize_to_string()
