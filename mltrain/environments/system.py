"""The ``system`` builder: the interpreter mltrain runs on, used as it is (nothing is built).

Like Azure ML's user-managed dependencies: nothing is installed, but requirements a system
environment lists are checked to be installed, so a missing package is an error before the run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mltrain.environments.base import EnvironmentBuilder, LogFn, Materialised
from mltrain.environments.resolve import ResolvedEnvironment
from mltrain.environments.spec import current_python
from mltrain.errors import EnvironmentSpecError


def _unmet(requirements: tuple[str, ...]) -> list[str]:
    """The requirements the running interpreter does not satisfy (local paths and options skipped)."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import InvalidRequirement, Requirement

    unmet = []
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue  # options (-r, --index-url) and paths: nothing to check
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            have = version(req.name)
        except PackageNotFoundError:
            unmet.append(f"{text} (not installed)")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            unmet.append(f"{text} ({have} is installed)")
    return unmet


class SystemBuilder(EnvironmentBuilder):
    kind = "system"
    builds = False  # the environment is the interpreter mltrain runs on

    def present(self, env_hash: str, location: str) -> bool | None:
        return bool(location) and Path(location).exists()

    def check(self, env: ResolvedEnvironment) -> None:
        if env.spec.python != current_python():
            raise EnvironmentSpecError(
                f"environment {env.spec.name} asks for Python {env.spec.python}, but build: system runs jobs "
                f"with this interpreter ({sys.executable}, Python {current_python()})",
                hint="use build: venv for another Python version, or drop environment.python",
            )
        if env.spec.requirements:
            unmet = _unmet(env.spec.requirements)
            if unmet:
                raise EnvironmentSpecError(
                    f"environment {env.spec.name} (build: system) needs what {sys.executable} does not have: "
                    + ", ".join(unmet),
                    hint="install them into that interpreter yourself, or set environment.build=venv "
                    "to have mltrain build an environment",
                )

    def materialise(self, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        self.check(env)
        return Materialised(self.kind, env.hash, sys.executable, sys.executable, env.spec.job_env, cached=True)
