"""Environments on a Ray cluster: the locked requirements become the job's runtime_env packages.

Nothing is built here: each node of the cluster installs the lock (Ray's ``pip`` or ``uv``
runtime_env field) the first time a job needs it and caches it by content, so worker nodes need
nothing preinstalled. The lock is kept as a requirements file in mltrain's cache (the
``location`` of the Materialised). A ``system`` environment means the cluster's own Python, with
nothing installed. Docker images are not run on a cluster (see ``check``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mltrain.environments.base import EnvironmentBuilder, LogFn, Materialised
from mltrain.environments.cache import cache_root
from mltrain.environments.resolve import ResolvedEnvironment
from mltrain.errors import EnvironmentSpecError


def lock_file(env_hash: str) -> Path:
    return cache_root() / "ray" / f"{env_hash[:24]}.txt"


class RayRuntimeEnvBuilder(EnvironmentBuilder):
    """Turns an environment into a Ray runtime_env on the cluster named by ``where``."""

    kind = "ray"

    def __init__(self, where: str) -> None:
        self.where = where

    def check(self, env: ResolvedEnvironment) -> None:
        if env.spec.build not in ("venv", "system"):
            raise EnvironmentSpecError(
                f"environment {env.spec.name} is built with build: {env.spec.build}, which a Ray cluster does not run",
                hint="use an environment with build: venv (its lock is installed on the nodes) or system "
                "(the cluster's own Python); for a container image set compute.runtime_env.image_uri",
            )

    def materialise(self, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        self.check(env)
        location = ""
        cached = True
        if env.spec.build == "venv":
            path = lock_file(env.hash)
            cached = path.is_file() and not rebuild
            if not cached:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}")
                tmp.write_text(env.lock)
                os.replace(tmp, path)
                log(f"{len(requirements(str(path)))} locked packages go to the cluster as the job's runtime_env")
            location = str(path)
        return Materialised(
            builder=env.spec.build,
            hash=env.hash,
            location=location,
            python="python",
            env_vars=env.spec.job_env,
            cached=cached,
            where=self.where,
        )


def requirements(location: str) -> list[str]:
    """The pinned requirement lines of a lock file (comments and options dropped)."""
    if not location:
        return []
    try:
        lines = Path(location).read_text().splitlines()
    except OSError as exc:
        raise EnvironmentSpecError(f"the environment's lock {location} is gone", hint="run again to write it") from exc
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith(("#", "-"))]


def packages_field(location: str, installer: str) -> dict[str, Any]:
    """The runtime_env field that installs the lock at ``location`` (empty when there is none)."""
    packages = requirements(location)
    if not packages:
        return {}
    if installer == "uv":
        return {"uv": {"packages": packages, "uv_pip_install_options": []}}
    return {"pip": {"packages": packages, "pip_check": False}}
