"""The ``system`` builder: the interpreter mltrain runs on, used as it is (nothing is built)."""

from __future__ import annotations

import sys

from mltrain.environments.base import EnvironmentBuilder, LogFn, Materialised
from mltrain.environments.resolve import ResolvedEnvironment
from mltrain.environments.spec import current_python
from mltrain.errors import EnvironmentSpecError


class SystemBuilder(EnvironmentBuilder):
    kind = "system"

    def materialise(self, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        if env.spec.python != current_python():
            raise EnvironmentSpecError(
                f"environment {env.spec.name} asks for Python {env.spec.python}, but build: system runs jobs "
                f"with this interpreter ({sys.executable}, Python {current_python()})",
                hint="use build: venv for another Python version, or drop environment.python",
            )
        return Materialised(self.kind, env.hash, sys.executable, sys.executable, dict(env.spec.env_vars), cached=True)
