"""Built environments as ``mltrain envs list|show --json`` and ``GET /api/environments`` give them: each
record with what its builder says now (still there, size, last use on this machine) and the runs
that used it."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mltrain.environments.base import EnvironmentBuilder
    from mltrain.workspace import Workspace
    from mltrain.workspace.environments import EnvironmentRecord

RECENT_RUNS = 5  # runs listed per environment (the newest; ``runs.count`` says how many in all)
Sizes = MutableMapping[tuple[str, str], int]  # (builder, hash) -> bytes measured by its builder


def environment_view(
    rec: EnvironmentRecord, builder: EnvironmentBuilder | None, runs: dict[str, Any], sizes: Sizes
) -> dict[str, Any]:
    """The record with ``present`` (whether the built environment is still there; None: cannot tell
    cheaply; ``exists`` is the same, its earlier name), ``size_bytes`` (measured once, into ``sizes``,
    for one present but recorded without a size), ``last_used_on_machine`` and ``runs``."""
    out = dict(rec)
    present = builder.present(rec.hash, rec.location or "") if builder is not None else None
    if rec.size_bytes is None and present and builder is not None:
        key = (rec.builder, rec.hash)
        if key not in sizes:
            size = builder.size(rec.hash, rec.location or "")
            if size is not None:
                sizes[key] = size
        out["size_bytes"] = sizes.get(key)
    out.update(
        present=present,
        exists=present,
        last_used_on_machine=builder.last_used(rec.hash, rec.location or "") if builder is not None else None,
        runs=runs,
    )
    return out


def list_environments(ws: Workspace, sizes: Sizes | None = None) -> list[dict[str, Any]]:
    """Every built environment of the workspace, most recently used first (see :func:`environment_view`);
    ``sizes`` keeps what was measured (the caller may store it, or keep it for the next call)."""
    return _views(ws, ws.environments.list(), {} if sizes is None else sizes)


def environment_detail(ws: Workspace, ident: str, sizes: Sizes | None = None) -> dict[str, Any]:
    """The environment a hash (or a unique prefix) or a name names (its most recently used record), with
    ``others``: the hashes of the other records of that name."""
    rec, others = ws.environments.find(ident)
    [view] = _views(ws, [rec], {} if sizes is None else sizes)
    return {**view, "others": [o.hash for o in others]}


def _views(ws: Workspace, records: list[EnvironmentRecord], sizes: Sizes) -> list[dict[str, Any]]:
    from mltrain.environments.builders import builder_of_record
    from mltrain.workspace.run_pages import env_runs

    builders = {kind: builder_of_record(kind) for kind in {r.builder for r in records}}
    used = env_runs(ws.db, sorted({r.hash for r in records}), RECENT_RUNS)
    return [environment_view(r, builders[r.builder], used[r.hash], sizes) for r in records]
