"""``mltrain envs prune``: delete built environments nobody used for a while, and their records.

An environment goes when this workspace has not used it since the cutoff and, for a venv, no
workspace on this machine has either (the venv's ready marker is touched on every use). What a
builder holds on this machine that no record of this workspace names (venvs of the machine's cache)
follows the second rule alone. Each builder answers whether its environment is still there, when
this machine last used it, its size, and removes it (``EnvironmentBuilder.present``, ``last_used``,
``size``, ``remove``). Environments recorded as living
elsewhere (``KIND@WHERE``) go through ``elsewhere`` (e.g. the SSH pool the command was given), which
applies the same rules on the machine that holds them; without it they are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from mltrain.errors import ConfigError

if TYPE_CHECKING:
    from mltrain.environments.base import EnvironmentBuilder
    from mltrain.workspace import Workspace

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms])")


def parse_duration(text: str) -> float:
    """Seconds in ``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or combinations like ``1d12h``."""
    compact = text.strip().lower().replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ConfigError(
            f"--older-than {text!r} is not a duration",
            hint="write a number with a unit: 30d, 12h, 90m, 45s, 2w, or a sum like 1d12h",
        )
    return sum(float(n) * _UNITS[u] for n, u in parts)


@dataclass
class PruneItem:
    """One environment ``envs prune`` looked at."""

    builder: str
    hash: str
    name: str | None
    location: str
    last_used: float | None  # the later of this workspace's and the machine's last use
    size_bytes: int | None
    recorded: bool  # this workspace has a record of it
    remove: bool  # pruned (or would be, in a dry run)
    note: str = ""  # why it is kept, or what was done


_ELSEWHERE = "lives on {where}; give its compute (e.g. +compute=ssh 'compute.hosts=[...]') to prune it there"


@runtime_checkable
class Elsewhere(Protocol):
    """Removes environments recorded as living on other machines (``KIND@WHERE``)."""

    def holds(self, where: str) -> bool:
        """True when ``where`` (the part after ``@``) is a machine this can reach."""

    def drop(self, kind: str, where: str, location: str, older_than: float) -> tuple[bool, str]:
        """Delete the environment at ``location`` there unless used there since ``older_than``:
        (removed or already gone, note)."""


def plan(ws: Workspace, cutoff: float, elsewhere: Elsewhere | None = None) -> list[PruneItem]:
    """What a prune with ``cutoff`` (epoch seconds) removes and keeps; nothing is changed."""
    from mltrain.environments.builders import builder_of_record
    from mltrain.environments.kinds import builder_kinds

    items: list[PruneItem] = []
    recorded: set[tuple[str, str]] = set()
    builders: dict[str, EnvironmentBuilder | None] = {}
    for rec in ws.environments.list():
        recorded.add((rec.builder, rec.hash))
        if (rec.last_used_at or 0.0) >= cutoff:
            continue
        item = PruneItem(
            rec.builder, rec.hash, rec.name, rec.location or "", rec.last_used_at, rec.size_bytes, True, True
        )
        items.append(item)
        if "@" in rec.builder:
            where = rec.builder.partition("@")[2]
            if elsewhere is None or not elsewhere.holds(where):
                item.remove, item.note = False, _ELSEWHERE.format(where=where)
            continue
        builder = builders.setdefault(rec.builder, builder_of_record(rec.builder))
        if builder is not None and not builder.builds:
            item.note = "nothing was built for it; record deleted"
        elif builder is not None:
            _check_here(builder, item, cutoff)
    for kind in builder_kinds():
        builder = builders.setdefault(kind, builder_of_record(kind))
        for held in builder.cached() if builder is not None else []:
            if (kind, held.hash) in recorded or held.last_used >= cutoff:
                continue
            size = builder.size(held.hash, held.location)  # type: ignore[union-attr]
            note = "not recorded in this workspace"
            items.append(PruneItem(kind, held.hash, held.name, held.location, held.last_used, size, False, True, note))
    return items


def _check_here(builder: EnvironmentBuilder, item: PruneItem, cutoff: float) -> None:
    """Mark ``item`` (built on this machine) as already gone, or kept when another workspace here used it
    since ``cutoff``; measure its size when it was recorded without one."""
    present = builder.present(item.hash, item.location)
    if present is False:
        item.note = "already gone; record deleted"
        return
    machine_use = builder.last_used(item.hash, item.location)
    if machine_use is not None:
        item.last_used = max(item.last_used or 0.0, machine_use)
        if machine_use >= cutoff:
            item.remove, item.note = False, "used since by another workspace on this machine"
            return
    if item.size_bytes is None and present:
        item.size_bytes = builder.size(item.hash, item.location)


def apply(ws: Workspace, items: list[PruneItem], cutoff: float, elsewhere: Elsewhere | None = None) -> list[PruneItem]:
    """Remove what ``plan`` marked; returns the items with ``remove``/``note`` updated to what happened."""
    from mltrain.environments.builders import builder_of_record
    from mltrain.environments.venv import remove_leftovers

    builders: dict[str, EnvironmentBuilder | None] = {}
    for item in items:
        if not item.remove:
            continue
        if "@" in item.builder:
            kind, _, where = item.builder.partition("@")
            if elsewhere is None or not elsewhere.holds(where):
                item.remove, item.note = False, _ELSEWHERE.format(where=where)
                continue
            try:
                item.remove, item.note = elsewhere.drop(kind, where, item.location, cutoff)
            except Exception as exc:  # noqa: BLE001 - one failure does not stop the prune
                item.remove, item.note = False, f"not removed: {exc}"
        elif not item.note.startswith("already gone"):
            builder = builders.setdefault(item.builder, builder_of_record(item.builder))
            if builder is None:
                item.remove, item.note = False, f"the {item.builder} builder is not available here"
            elif builder.builds:
                _remove_here(builder, item, cutoff)
        if item.remove and item.recorded:
            ws.environments.delete(item.hash, item.builder)
    remove_leftovers()
    return items


def _remove_here(builder: EnvironmentBuilder, item: PruneItem, cutoff: float) -> None:
    """Delete what ``item`` names on this machine; a failure (or a use since ``cutoff``) keeps it."""
    try:
        if not builder.remove(item.hash, item.location, older_than=cutoff) and builder.present(
            item.hash, item.location
        ):
            item.remove, item.note = False, "in use or being built; kept"
    except NotImplementedError:
        item.remove, item.note = False, f"the {item.builder} builder cannot remove environments; kept"
    except Exception as exc:  # noqa: BLE001 - one failure does not stop the prune
        item.remove, item.note = False, f"not removed: {exc}"
