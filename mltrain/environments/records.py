"""The workspace's records of built environments (``environments`` table): list, find, update, delete.

A record is written by ``record_use`` (mltrain/environments/base.py) each time a run or
``mltrain envs build`` uses an environment; it keeps the spec and the lock it was built from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.errors import MltrainError, NotFoundError

if TYPE_CHECKING:
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.workspace import Workspace


def _row(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    spec = json.loads(out["spec"]) if out.get("spec") else {}
    out["lock"] = spec.pop("lock", None)
    out["spec"] = spec
    return out


def list_environments(ws: Workspace) -> list[dict[str, Any]]:
    """Every record, most recently used first (``spec`` parsed, ``lock`` split out of it)."""
    from sqlalchemy import select

    from mltrain.workspace import tables as t

    with ws.db.read() as conn:
        rows = conn.execute(select(t.environments).order_by(t.environments.c.last_used_at.desc())).all()
    return [_row(r) for r in rows]


def find_environment(ws: Workspace, ident: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The record named by a hash (or a unique prefix of one) or a name (its most recently used
    record), and the other records of that name."""
    ident = ident.strip()
    records = list_environments(ws)
    lowered = ident.lower()
    by_hash = [r for r in records if len(lowered) >= 4 and r["hash"].startswith(lowered)]
    if len({r["hash"] for r in by_hash}) > 1:
        raise NotFoundError(
            f"{ident!r} is the start of several environment hashes",
            hint="give more characters: " + ", ".join(sorted({r["hash"][:16] for r in by_hash})),
        )
    if by_hash:
        return by_hash[0], by_hash[1:]
    by_name = [r for r in records if r["name"] == ident]
    if by_name:
        return by_name[0], by_name[1:]
    names = sorted({r["name"] for r in records})
    raise NotFoundError(
        f"no environment {ident!r} in this workspace",
        hint=("known: " + ", ".join(names) + "; " if names else "")
        + "`mltrain envs list` shows them; `mltrain envs build NAME` builds one",
    )


def set_size(ws: Workspace, env_hash: str, builder: str, size_bytes: int) -> None:
    from sqlalchemy import update

    from mltrain.workspace import tables as t

    key = (t.environments.c.hash == env_hash) & (t.environments.c.builder == builder)
    with ws.db.write() as conn:
        conn.execute(update(t.environments).where(key).values(size_bytes=size_bytes))


def delete_record(ws: Workspace, env_hash: str, builder: str) -> None:
    from sqlalchemy import delete

    from mltrain.workspace import tables as t

    key = (t.environments.c.hash == env_hash) & (t.environments.c.builder == builder)
    with ws.db.write() as conn:
        conn.execute(delete(t.environments).where(key))


def recorded_environment(ws: Workspace, env_config: dict[str, Any], env_hash: str) -> ResolvedEnvironment | None:
    """The environment a run ran in (spec and lock) when the workspace still knows a lock giving
    ``env_hash``: its record of the built environment, else the stored lock of the spec."""
    from mltrain.environments.resolve import ResolvedEnvironment, stored_lock
    from mltrain.environments.spec import EnvSpec

    for rec in list_environments(ws):
        if rec["hash"] != env_hash:
            continue
        s = rec["spec"]
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
        env = ResolvedEnvironment(spec, rec["lock"] or "")
        if env.hash == env_hash:
            return env
    try:
        spec = EnvSpec.from_config(env_config, base_dir=Path.cwd())
    except MltrainError:
        return None
    if spec.build == "system":
        env = ResolvedEnvironment(spec, "")
        return env if env.hash == env_hash else None
    found = stored_lock(ws, spec.spec_hash)
    if found is not None and ResolvedEnvironment(spec, found[0]).hash == env_hash:
        return ResolvedEnvironment(spec, found[0])
    return None
