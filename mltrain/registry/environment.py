"""The environment a model was trained in, read back from the workspace (no network, nothing built).

A model registered from a run carries the run's environment hash. The spec and lock are found in
the ``environments`` records (written whenever an environment is used), else from the run's
recorded config and the lock stored for that spec. A model registered from a plain file has none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.workspace import Workspace
    from mltrain.workspace.runs import RunInfo


def _from_records(ws: Workspace, env_hash: str) -> ResolvedEnvironment | None:
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.environments.spec import EnvSpec

    for rec in ws.environments.list(env_hash):
        spec = rec.spec
        if not spec:
            continue
        env_spec = EnvSpec(
            name=str(spec.get("name") or rec.name),
            build=str(spec.get("build") or rec.builder),
            python=str(spec.get("python") or rec.python),
            requirements=tuple(spec.get("requirements") or ()),
            env_vars=dict(spec.get("env_vars") or {}),
            base_image=spec.get("base_image"),
            version=spec.get("version"),
            sources=dict(spec.get("sources") or {}),
        )
        return ResolvedEnvironment(env_spec, rec.lock or "")
    return None


def _from_run_config(ws: Workspace, run: RunInfo, env_hash: str) -> ResolvedEnvironment | None:
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.environments.spec import EnvSpec
    from mltrain.errors import MltrainError

    node = (run.config or {}).get("environment")
    if not isinstance(node, dict):
        return None
    try:
        spec = EnvSpec.from_config(node, base_dir=run.source_dir or ".")
    except MltrainError:
        return None
    if spec.build == "system":
        env = ResolvedEnvironment(spec, "")
    else:
        found = ws.environments.lock(spec.spec_hash)
        if found is None:
            return None
        env = ResolvedEnvironment(spec, found[0])
    return env if env.hash == env_hash else None


def model_environment(ws: Workspace, env_hash: str | None, run_id: str | None = None) -> ResolvedEnvironment | None:
    """The resolved environment of hash ``env_hash`` (with the run ``run_id`` as a fallback source), or None."""
    if not env_hash:
        return None
    env = _from_records(ws, env_hash)
    if env is None and run_id:
        from mltrain.errors import NotFoundError

        try:
            run = ws.runs.get(run_id)
        except NotFoundError:
            return None
        env = _from_run_config(ws, run, env_hash)
    return env
