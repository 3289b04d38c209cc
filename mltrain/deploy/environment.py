"""The serving environment of a model: its own environment plus what the scoring server needs.

- A model with a recorded environment (registered from a run): the run's Python and every package
  of its lock, pinned, plus ``requirements_for(format)`` of :mod:`mltrain.serving`; locked once in
  the workspace and built (and cached by hash) like any environment, as a venv or a Docker image.
- A model of a ``system`` environment served locally: that interpreter (its packages are checked).
- A model without an environment (a plain file): scikit-learn pinned to its framework version (else
  the version mltrain runs with), joblib, numpy and scipy, plus the server's requirements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mltrain.errors import DeployError

if TYPE_CHECKING:
    from mltrain.environments.base import LogFn, Materialised
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.environments.spec import EnvSpec
    from mltrain.workspace import Workspace
    from mltrain.workspace.models import ModelVersion

PLAIN_FILE_PACKAGES = ("joblib", "numpy", "scipy")


def _lock_pins(lock: str) -> list[str]:
    return [line.strip() for line in lock.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _sklearn_pin(mv: ModelVersion) -> str:
    from mltrain.registry.from_file import current_sklearn_version
    from mltrain.registry.from_run import SKLEARN

    version = mv.framework_version if mv.framework == SKLEARN and mv.framework_version else None
    version = version or current_sklearn_version()
    return f"scikit-learn=={version}" if version else "scikit-learn"


def serving_spec(ws: Workspace, mv: ModelVersion, fmt: str, build: str, base_image: str | None) -> EnvSpec:
    """The spec of the environment that serves ``mv`` (a model file in format ``fmt``) with builder ``build``."""
    from mltrain.environments.spec import EnvSpec, current_python
    from mltrain.registry.environment import model_environment
    from mltrain.serving import requirements_for

    server = requirements_for(fmt)
    model_env = model_environment(ws, mv.env_hash, mv.run_id)
    if model_env is not None and model_env.spec.build == "system" and build == "venv":
        spec = model_env.spec
        return EnvSpec(name=f"{spec.name}-serving", build="system", python=spec.python, requirements=tuple(server))
    if model_env is not None and model_env.spec.build != "system":
        spec = model_env.spec
        return EnvSpec(
            name=f"{spec.name}-serving",
            build=build,
            python=spec.python,
            requirements=tuple(dict.fromkeys([*_lock_pins(model_env.lock), *server])),
            env_vars=dict(spec.env_vars),
            base_image=base_image or spec.base_image,
            version=spec.version,
        )
    return EnvSpec(
        name=f"{mv.name}-serving",
        build=build,
        python=current_python(),
        requirements=(_sklearn_pin(mv), *PLAIN_FILE_PACKAGES, *server),
        base_image=base_image,
    )


def prepare_serving_environment(
    ws: Workspace, spec: EnvSpec, log: LogFn, base_url: str | None = None
) -> tuple[ResolvedEnvironment, Materialised]:
    """Lock (once per workspace), build (once per machine) and record the serving environment."""
    from mltrain.environments.base import record_use
    from mltrain.environments.builders import builder_for
    from mltrain.environments.resolve import resolve

    if spec.build == "docker" and not spec.base_image:
        raise DeployError(
            f"the docker target needs a base image for environment {spec.name} (Python {spec.python}), "
            "and the model's environment names none",
            hint="set the deploy option base_image (+deploy=docker deploy.base_image=IMAGE, or --base-image IMAGE) "
            f"to an image with Python {spec.python}",
        )
    env = resolve(spec, ws)
    builder = builder_for(spec.build, base_url=base_url) if spec.build == "docker" else builder_for(spec.build)
    builder.check(env)
    built = builder.materialise(env, log)
    record_use(ws, env, built)
    return env, built
