"""``mltrain envs prune``: delete built environments nobody used for a while, and their records.

An environment goes when this workspace has not used it since the cutoff and, for a venv, no
workspace on this machine has either (the venv's ready marker is touched on every use). Venvs in
the machine's cache that no record of this workspace names follow the second rule alone. Docker
images go through the docker builder's ``remove`` when it has one. Environments recorded as living
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


def _builder(kind: str) -> EnvironmentBuilder | None:
    """The builder that can remove environments of ``kind`` on this machine (None for ``system``
    and for environments recorded as living elsewhere, ``KIND@WHERE``)."""
    from mltrain.environments.builders import builder_for
    from mltrain.environments.kinds import builder_kinds

    if kind == "system" or kind not in builder_kinds():
        return None
    try:
        return builder_for(kind)
    except Exception:  # noqa: BLE001 - a builder that cannot even start just prunes nothing
        return None


def plan(ws: Workspace, cutoff: float, elsewhere: Elsewhere | None = None) -> list[PruneItem]:
    """What a prune with ``cutoff`` (epoch seconds) removes and keeps; nothing is changed."""
    from mltrain.environments.records import list_environments
    from mltrain.environments.venv import READY_MARKER, cached_venvs, venv_path
    from mltrain.workspace.paths import folder_size

    items: list[PruneItem] = []
    recorded_venvs: set[str] = set()
    for rec in list_environments(ws):
        if rec["builder"] == "venv":
            recorded_venvs.add(rec["hash"])
        if rec["last_used_at"] >= cutoff:
            continue
        item = PruneItem(
            rec["builder"],
            rec["hash"],
            rec["name"],
            rec["location"] or "",
            rec["last_used_at"],
            rec["size_bytes"],
            True,
            True,
        )
        if rec["builder"] == "venv":
            marker = venv_path(rec["hash"]) / READY_MARKER
            if not marker.exists():
                item.note = "already gone; record deleted"
            else:
                machine_use = marker.stat().st_mtime
                item.last_used = max(item.last_used or 0.0, machine_use)
                if machine_use >= cutoff:
                    item.remove, item.note = False, "used since by another workspace on this machine"
                elif item.size_bytes is None:
                    item.size_bytes = folder_size(venv_path(rec["hash"]))[0]
        elif rec["builder"] == "system":
            item.note = "nothing built (the interpreter mltrain runs on); record deleted"
        elif "@" in rec["builder"]:
            where = rec["builder"].partition("@")[2]
            if elsewhere is None or not elsewhere.holds(where):
                item.remove = False
                item.note = _ELSEWHERE.format(where=where)
        items.append(item)
    for info in cached_venvs():
        env_hash = str(info["hash"])
        last = float(info["last_used"])  # type: ignore[arg-type]
        if env_hash in recorded_venvs or last >= cutoff:
            continue
        folder = str(info["folder"])
        items.append(
            PruneItem(
                "venv",
                env_hash,
                str(info.get("name") or "") or None,
                folder,
                last,
                folder_size(venv_path(env_hash))[0],
                False,
                True,
                "not recorded in this workspace",
            )
        )
    return items


def apply(ws: Workspace, items: list[PruneItem], cutoff: float, elsewhere: Elsewhere | None = None) -> list[PruneItem]:
    """Remove what ``plan`` marked; returns the items with ``remove``/``note`` updated to what happened."""
    from mltrain.environments.records import delete_record
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
            if item.remove and item.recorded:
                delete_record(ws, item.hash, item.builder)
            continue
        builder = builders.setdefault(item.builder, _builder(item.builder))
        if item.builder != "system" and not item.note.startswith("already gone"):
            if builder is None:
                item.remove, item.note = False, f"the {item.builder} builder is not available here"
                continue
            try:
                if item.builder == "venv":
                    from mltrain.environments.venv import remove_venv

                    done = remove_venv(item.hash, older_than=cutoff)
                    if not done:
                        item.remove, item.note = False, "in use or being built; kept"
                        continue
                else:
                    builder.remove(item.hash, item.location)
            except NotImplementedError:
                item.remove, item.note = False, f"the {item.builder} builder cannot remove environments; kept"
                continue
            except Exception as exc:  # noqa: BLE001 - one failure does not stop the prune
                item.remove, item.note = False, f"not removed: {exc}"
                continue
        if item.recorded:
            delete_record(ws, item.hash, item.builder)
    remove_leftovers()
    return items
