"""Built environments as the workspace recorded them (``ws.environments``), read back with what their
builders say now: the environment a run ran in, and every record with whether it is still there.

A record is written by ``record_use`` (mltrain/environments/base.py) each time a run, a deploy or
``mltrain envs build`` uses an environment; it keeps the spec and the lock it was built from.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.errors import MltrainError

if TYPE_CHECKING:
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.workspace import Workspace


def recorded_environment(ws: Workspace, env_config: dict[str, Any], env_hash: str) -> ResolvedEnvironment | None:
    """The environment a run ran in (spec and lock) when the workspace still knows a lock giving
    ``env_hash``: its record of the built environment, else the stored lock of the spec."""
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.environments.spec import EnvSpec

    for rec in ws.environments.list(env_hash):
        s = rec.spec
        spec = EnvSpec(
            name=str(s.get("name") or env_config.get("name") or "unnamed"),
            build=str(s.get("build") or "venv"),
            python=str(s.get("python")),
            requirements=tuple(s.get("requirements") or ()),
            env_vars=dict(env_config.get("env_vars") or s.get("env_vars") or {}),
            base_image=s.get("base_image"),
            docker_network=str((env_config.get("docker") or {}).get("network") or "host"),
            version=s.get("version"),
            sources=dict(s.get("sources") or {}),
        )
        env = ResolvedEnvironment(spec, rec.lock or "")
        if env.hash == env_hash:
            return env
    try:
        spec = EnvSpec.from_config(env_config, base_dir=Path.cwd())
    except MltrainError:
        return None
    if spec.build == "system":
        env = ResolvedEnvironment(spec, "")
        return env if env.hash == env_hash else None
    found = ws.environments.lock(spec.spec_hash)
    if found is not None and ResolvedEnvironment(spec, found[0]).hash == env_hash:
        return ResolvedEnvironment(spec, found[0])
    return None
