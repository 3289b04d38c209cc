"""The suite on pytest-xdist workers (scripts/test.sh runs ``-n N --dist loadgroup``); a plugin of
tests/conftest.py.

Some tests run on one worker, one after another: those of the Ray cluster (its ports are fixed: one
cluster per machine) and those of a module that shares a module- or class-scoped fixture of the suite
(made once, not once per worker). Each worker finds these groups from the tests' fixtures once it has
collected them and writes them to a file; the controller's scheduler reads it and hands each group to
one worker, the biggest groups first. xdist's own ``xdist_group`` marks are honoured too: xdist carries
them in node ids, which pytest 9.2 no longer lets a plugin change (pytest-dev/pytest-xdist#1386).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

GROUPS_DIR = "MLTRAIN_TEST_GROUPS"  # the folder the workers write their groups to (set by the controller)


def group_of(item: pytest.Item) -> str | None:
    """The group ``item`` runs in (None: any worker, on its own)."""
    marks = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
    if marks:
        return "_".join(sorted(marks))
    if "ray_cluster" in getattr(item, "fixturenames", ()):
        return "ray-cluster"
    info = getattr(item, "_fixtureinfo", None)
    for defs in info.name2fixturedefs.values() if info is not None else ():
        fixture = defs[-1]
        if fixture.baseid and fixture.scope in ("module", "class", "package"):  # baseid "": a plugin's
            return item.nodeid.split("::")[0]
    return None


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or config.getoption("dist", "no") != "loadgroup" or not config.getoption("tx"):
        return
    folder = tempfile.mkdtemp(prefix="mltrain-xdist-")
    os.environ[GROUPS_DIR] = folder  # the workers, started after this, inherit it
    config.pluginmanager.register(GroupScheduler(Path(folder)), "mltrain-group-scheduler")

    def cleanup() -> None:
        os.environ.pop(GROUPS_DIR, None)
        shutil.rmtree(folder, ignore_errors=True)

    config.add_cleanup(cleanup)


@pytest.hookimpl(tryfirst=True)  # before xdist tells the controller this worker's collection is complete
def pytest_collection_finish(session: pytest.Session) -> None:
    folder, worker = os.environ.get(GROUPS_DIR), getattr(session.config, "workerinput", {}).get("workerid")
    if not folder or not worker:
        return
    groups = {item.nodeid: group for item in session.items if (group := group_of(item)) is not None}
    partial = Path(folder) / f".{worker}.json"
    partial.write_text(json.dumps(groups))
    os.replace(partial, Path(folder) / f"{worker}.json")


class GroupScheduler:
    """Makes the controller's scheduler: xdist's scope scheduler, whose scopes are the workers' groups."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        from xdist.scheduler import LoadScopeScheduling

        folder = self.folder

        class GroupScheduling(LoadScopeScheduling):
            groups: dict[str, str] | None = None

            def _split_scope(self, nodeid: str) -> str:
                if self.groups is None:
                    self.groups = read_groups(folder)
                return self.groups.get(nodeid, nodeid)

        return GroupScheduling(config, log)


def read_groups(folder: Path) -> dict[str, str]:
    """The groups the workers wrote (they collected the same tests, so they agree)."""
    written = sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))
    if not written:
        raise RuntimeError(f"no worker wrote its test groups to {folder}: tests/xdist_groups.py is not loaded by them")
    groups: dict[str, str] = {}
    for path in written:
        groups.update(json.loads(path.read_text()))
    return groups
