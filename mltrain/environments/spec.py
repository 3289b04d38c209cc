"""Environment specs: the ``environment`` config group normalised into what a lock is made from.

The requirements of a spec are its ``pip`` list, the lines of its ``requirements_file`` and what its
``conda_file`` asks for; ``python`` is an X.Y version (default: the one mltrain runs on). The
``spec_hash`` covers exactly what the lock depends on, so two specs that differ only in name or
version (or in the proxies their builds go through) share a lock. Local paths (``./pkg``) become
absolute; their contents are not hashed, so a changed local package needs ``environment.rebuild=true``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mltrain.environments.kinds import builder_kinds
from mltrain.environments.variables import read_references
from mltrain.errors import EnvironmentSpecError

# environment variables that change what a build installs (index URLs, resolver options)
BUILD_ENV_PREFIXES = ("PIP_", "UV_")
# the proxies a build's installers (uv, pip, requests, urllib) go through, as they read them: not what is installed
PROXY_VARS = tuple(n for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY") for n in (name, name.lower()))
_PYTHON = re.compile(r"^3\.\d{1,2}$")


def install_vars(env_vars: Mapping[str, Any]) -> dict[str, str]:
    """The variables of an environment's ``env_vars`` that change what its build installs (``PIP_*``,
    ``UV_*``), as written (``${oc.env:NAME}`` unread): part of the environment's identity."""
    return {str(k): str(v) for k, v in sorted(env_vars.items()) if str(k).startswith(BUILD_ENV_PREFIXES)}


def build_vars(env_vars: Mapping[str, Any]) -> dict[str, str]:
    """The variables of an environment's ``env_vars`` that its builds get, as written: the
    :func:`install_vars` and the proxies (:data:`PROXY_VARS`), which change how packages are fetched,
    not which (so they are not in the environment's identity)."""
    proxies = {str(k): str(v) for k, v in env_vars.items() if str(k) in PROXY_VARS}
    return dict(sorted({**install_vars(env_vars), **proxies}.items()))


def build_env(env_vars: Mapping[str, Any]) -> dict[str, str]:
    """The :func:`build_vars` as a build gets them: ``${oc.env:NAME}`` read from the environment now,
    and a proxy written in one spelling only (``HTTPS_PROXY``) set in the other too (``https_proxy``),
    so it wins over the machine's own in every installer (pip prefers the lower case, uv the upper)."""
    env = read_references(build_vars(env_vars), "environment.env_vars")
    for name in PROXY_VARS:
        other = name.lower() if name.isupper() else name.upper()
        if name in env and other not in env_vars:
            env[other] = env[name]
    return env


def current_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class EnvSpec:
    """A normalised environment spec."""

    name: str
    build: str
    python: str
    requirements: tuple[str, ...] = ()
    env_vars: dict[str, str] = field(default_factory=dict)
    base_image: str | None = None
    docker_network: str = "host"
    version: str | None = None
    rebuild: bool = False
    sources: dict[str, str] = field(default_factory=dict)  # which files the spec was read from

    @classmethod
    def from_config(cls, cfg: Any, base_dir: str | os.PathLike[str] = ".") -> EnvSpec:
        """Read an ``environment`` config node; relative file paths start at ``base_dir``."""
        from mltrain.environments.conda import read_conda_file

        get = cfg.get if hasattr(cfg, "get") else lambda k, d=None: getattr(cfg, k, d)
        name = str(get("name") or "unnamed")
        build = str(get("build") or "venv")
        if build not in builder_kinds():
            raise EnvironmentSpecError(
                f"environment {name}: unknown build {build!r}",
                hint=f"set environment.build to one of {', '.join(builder_kinds())}",
            )
        python = get("python")
        pip = get("pip") or []
        if isinstance(pip, str):
            raise EnvironmentSpecError(
                f"environment {name}: pip must be a list of requirements, got the string {pip!r}",
                hint=f"write it as a list: environment.pip=[{pip}]",
            )
        requirements: list[str] = [str(r).strip() for r in pip if str(r).strip()]
        sources: dict[str, str] = {}
        req_file = get("requirements_file")
        if req_file:
            path = _existing(base_dir, req_file, f"environment {name}: requirements_file")
            sources["requirements_file"] = str(path)
            requirements += _requirement_lines(path)
        conda_file = get("conda_file")
        if conda_file:
            path = _existing(base_dir, conda_file, f"environment {name}: conda_file")
            sources["conda_file"] = str(path)
            conda = read_conda_file(path)
            if conda.python and python and str(python) != conda.python:
                raise EnvironmentSpecError(
                    f"environment {name}: python {python} differs from python={conda.python} in {path}",
                    hint="keep one of the two",
                )
            python = python or conda.python
            requirements += list(conda.requirements)
        python = str(python) if python is not None else current_python()
        if not _PYTHON.match(python):
            python = ".".join(python.split(".")[:2])
            if not _PYTHON.match(python):
                raise EnvironmentSpecError(
                    f"environment {name}: python {get('python')!r} is not a version", hint="write it as X.Y, e.g. 3.11"
                )
        docker = get("docker") or {}
        dget = docker.get if hasattr(docker, "get") else lambda k, d=None: getattr(docker, k, d)
        return cls(
            name=name,
            build=build,
            python=python,
            requirements=tuple(dict.fromkeys(_absolute_path(r, base_dir) for r in requirements)),
            env_vars={str(k): str(v) for k, v in (get("env_vars") or {}).items()},
            base_image=dget("base_image"),
            docker_network=str(dget("network") or "host"),
            version=None if get("version") is None else str(get("version")),
            rebuild=bool(get("rebuild") or False),
            sources=sources,
        )

    @property
    def install_vars(self) -> dict[str, str]:
        """The env vars that change what a build installs, as written (``${oc.env:NAME}`` unread)."""
        return install_vars(self.env_vars)

    @property
    def build_vars(self) -> dict[str, str]:
        """The env vars a build gets (those and the proxies), as written (``${oc.env:NAME}`` unread)."""
        return build_vars(self.env_vars)

    @property
    def build_env(self) -> dict[str, str]:
        """The env vars a build gets, as it gets them (:func:`build_env`)."""
        return build_env(self.env_vars)

    @property
    def job_env(self) -> dict[str, str]:
        """``env_vars`` as a job gets them: ``${oc.env:NAME}`` read from the environment now (never stored)."""
        return read_references(self.env_vars, "environment.env_vars")

    @property
    def spec_hash(self) -> str:
        """Hash of what the lock depends on: python version, requirements, install env vars (as written;
        not the proxies)."""
        payload = {"python": self.python, "requirements": sorted(self.requirements), "env": self.install_vars}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "build": self.build,
            "python": self.python,
            "requirements": list(self.requirements),
            "env_vars": self.env_vars,
            "base_image": self.base_image,
            "sources": self.sources,
        }


def _existing(base_dir: str | os.PathLike[str], path: str, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = Path(base_dir) / p
    if not p.is_file():
        raise EnvironmentSpecError(
            f"{what} {p} does not exist", hint="fix the path (a relative path starts at the folder mltrain runs in)"
        )
    return p


def _absolute_path(requirement: str, base_dir: str | os.PathLike[str]) -> str:
    """A requirement naming a local folder or file (``./pkg``, ``-e ../lib``) with an absolute path,
    so the lock does not depend on the folder mltrain runs in."""
    prefix, _, rest = requirement.partition(" ") if requirement.startswith("-e ") else ("", "", requirement)
    rest = rest.strip()
    if rest.startswith(("./", "../", "~/")) or rest in (".", ".."):
        path = Path(rest).expanduser()
        rest = str((path if path.is_absolute() else Path(base_dir) / path).resolve())
        return f"{prefix} {rest}" if prefix else rest
    return requirement


def _requirement_lines(path: Path) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out
