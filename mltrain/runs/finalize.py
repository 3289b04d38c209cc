"""Collection of a finished run's files into the workspace: outputs/, logs/ and uploaded files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from mltrain.run_context import UPLOADS_DIR

if TYPE_CHECKING:
    from mltrain.workspace import Workspace

COLLECTED_DIRS = ("outputs", "logs")


def collect_artifacts(ws: Workspace, run_id: str, run_dir: Path) -> list[tuple[str, str, int]]:
    """Store outputs/, logs/ and uploads of ``run_dir`` as the run's artifacts; return them."""
    items: list[tuple[str, str, int]] = []
    for top in COLLECTED_DIRS:
        base = run_dir / top
        for dirpath, _dirs, files in os.walk(base):
            for name in sorted(files):
                full = Path(dirpath, name)
                if full.is_file():
                    sha, size = ws.blobs.put_file(full)
                    items.append((full.relative_to(run_dir).as_posix(), sha, size))
    uploads = run_dir / UPLOADS_DIR
    for dirpath, _dirs, files in os.walk(uploads):
        for name in sorted(files):
            full = Path(dirpath, name)
            sha, size = ws.blobs.put_file(full)
            items.append((full.relative_to(uploads).as_posix(), sha, size))
    ws.runs.add_artifacts(run_id, items)
    return items
