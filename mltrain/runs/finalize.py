"""Collection of a finished run's files into the workspace: outputs/, logs/ and uploaded files.

The run folder is untrusted (a container may write into it): a symlink that resolves outside the run
folder is never followed (skipped, with a warning); one inside is stored as the file it points to.
When a script writes ``outputs/x`` and also uploads a file named ``outputs/x`` with
``run.upload_file``, the upload wins: the artifact is the uploaded file. Problems met after the run
ended (a registration that failed) are recorded on it and added to its stored log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mltrain.run_context import UPLOADS_DIR
from mltrain.runs.output import STD_LOG
from mltrain.workspace.paths import check_relpath, walk_files

if TYPE_CHECKING:
    from mltrain.workspace import Workspace

COLLECTED_DIRS = ("outputs", "logs")
log = logging.getLogger("mltrain")


def _log_warning(line: str) -> None:
    log.warning("%s", line)


def collect_artifacts(
    ws: Workspace,
    run_id: str,
    run_dir: Path,
    warn: Callable[[str], None] | None = None,
    stored: dict[str, tuple[str, int]] | None = None,
) -> list[tuple[str, str, int]]:
    """Store outputs/, logs/ and uploads of ``run_dir`` as the run's artifacts; return them. ``stored``:
    files the run's node put into the blob store itself (path -> (sha256, size), checked by the store),
    recorded too (a file of the same path in ``run_dir`` wins).

    ``warn`` gets a line for every file left out (a symlink out of the run folder); by default it is logged.
    """
    say = warn or _log_warning
    found: dict[str, tuple[str, int]] = dict(stored or {})
    for top in COLLECTED_DIRS:
        for rel, full in walk_files(run_dir / top, lambda m: say(f"warning: {m}"), root=run_dir):
            found[f"{top}/{rel}"] = ws.blobs.put_file(full)
    for rel, full in walk_files(run_dir / UPLOADS_DIR, lambda m: say(f"warning: {m}"), root=run_dir):
        check_relpath(rel)
        found[rel] = ws.blobs.put_file(full)  # after outputs/ and logs/: the upload wins
    items = [(path, sha, size) for path, (sha, size) in found.items()]
    ws.runs.add_artifacts(run_id, items)
    return items


def record_problems(ws: Workspace, run_id: str, problems: list[str]) -> None:
    """Record ``problems`` on the finished run (its status stays) and append them to its log, whose
    stored copy is replaced. A log that is not a regular file of the run folder is left alone."""
    if not problems:
        return
    ws.runs.add_problems(run_id, problems)
    run_dir = ws.runs.get(run_id)["run_dir"]
    if not run_dir:
        return
    try:
        fd = os.open(Path(run_dir) / STD_LOG, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW)
    except OSError:
        return
    with os.fdopen(fd, "r+b") as f:
        f.write("".join(f"[mltrain] problem: {p}\n" for p in problems).encode())
        f.seek(0)
        sha, size = ws.blobs.put_stream(f)
    ws.runs.add_artifacts(run_id, [(STD_LOG, sha, size)])
