"""Reading a file of a run: from its folder while it exists (live), else from its stored artifact
(its blob checked against its hash)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mltrain.workspace import Workspace
    from mltrain.workspace.runs import RunInfo


def read_run_file(ws: Workspace, run: RunInfo, rel: str, offset: int = 0, limit: int | None = None) -> bytes:
    """Bytes ``offset`` .. ``offset + limit`` of the run's file ``rel`` (e.g. ``logs/std_log.txt``);
    empty when the run has no such file. ``rel`` must be a path the run records, never user input
    joined blindly: it is looked up in the run folder only when it stays inside it."""
    run_dir = Path(run.run_dir) if run.run_dir else None
    if run_dir is not None:
        path = run_dir / rel
        if path.resolve().is_relative_to(run_dir.resolve()) and path.is_file():
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read() if limit is None else f.read(limit)
    for art in ws.runs.artifacts(run.id):
        if art.path == rel:
            with ws.blobs.open(art.sha256) as f:  # checked against its hash (WorkspaceError when not)
                f.seek(offset)
                return f.read() if limit is None else f.read(limit)
    return b""


def download_artifacts(ws: Workspace, run_id: str, dest: str | Path, only: list[str] | None = None) -> list[str]:
    """Write every artifact of run ``run_id`` (or those whose path is in ``only``) into ``dest``, each
    verified against its hash; what could not be written (a missing or changed blob: nothing is written
    for it). Every stored path is checked before anything is written."""
    from mltrain.errors import WorkspaceError
    from mltrain.workspace.paths import safe_join

    arts = [a for a in ws.runs.artifacts(run_id) if only is None or a.path in only]
    targets = [safe_join(Path(dest), art.path) for art in arts]  # any unsafe stored path: refused first
    bad: list[str] = []
    for art, target in zip(arts, targets, strict=True):
        try:
            ws.blobs.copy_to(art.sha256, target)
        except WorkspaceError as exc:
            bad.append(f"{art.path}: {exc.message}")
    return bad
