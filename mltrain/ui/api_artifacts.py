"""API of a run's artifacts: the file (inline for images and text, else an attachment), table previews."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any, BinaryIO

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from mltrain.errors import WorkspaceError
from mltrain.ui.params import ApiError, flag, json_response, run_of, text, ws_of

CHUNK = 1 << 16

PREVIEW_BYTES = 1 << 20  # of an artifact read for its preview
PREVIEW_ROWS = 200
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
FORMATS = {".json": "json", ".jsonl": "jsonl", ".md": "markdown", ".yaml": "yaml", ".yml": "yaml", ".csv": "csv"}
TEXT_SUFFIXES = {".txt", ".log", ".csv", ".tsv", ".json", ".jsonl", ".md", ".yaml", ".yml", ".py", ".toml", ".cfg"}


def _artifact(request: Request, path: str) -> tuple[dict[str, Any], BinaryIO]:
    """The artifact record ``path`` of the run and its blob, opened once checked against its hash
    (410 when its record names no blob, or the blob is missing or changed)."""
    ws = ws_of(request)
    run = run_of(request)
    for art in ws.runs.artifacts(run["id"]):
        if art["path"] == path:
            try:
                return art, ws.blobs.open(art["sha256"])
            except WorkspaceError as exc:
                raise ApiError(410, f"the content of artifact {path[:200]!r} cannot be served: {exc.message}") from None
    raise ApiError(404, f"run {run['id']} has no artifact {path[:200]!r}", hint="GET /api/runs/ID lists its artifacts")


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    with f:
        while chunk := f.read(CHUNK):
            yield chunk


def artifact(request: Request) -> Response:
    """An artifact of the run: images and text inline, anything else (or with ``download=1``) as an attachment."""
    path = request.path_params["path"]
    _art, blob = _artifact(request, path)
    name = PurePosixPath(path).name
    suffix = PurePosixPath(path).suffix.lower()
    download = flag(request, "download")
    if suffix in IMAGE_TYPES and not download:
        media, disposition = IMAGE_TYPES[suffix], "inline"
    elif suffix in TEXT_SUFFIXES and not download:
        media, disposition = "text/plain; charset=utf-8", "inline"
    else:
        media, disposition = "application/octet-stream", "attachment"
    from urllib.parse import quote

    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}",
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'",
        "X-Content-Type-Options": "nosniff",
    }
    headers["Content-Length"] = str(os.fstat(blob.fileno()).st_size)
    # the checked file itself is sent (never the path opened again, which another writer may have replaced)
    return StreamingResponse(_chunks(blob), media_type=media, headers=headers)


def preview(request: Request) -> Response:
    """The start of an artifact: a CSV/TSV file's first rows (``kind`` table: ``columns``, ``rows``), a
    text file's first PREVIEW_BYTES (``kind`` text: ``text``, ``format``); ``truncated`` when there is more."""
    path = text(request, "path", max_chars=1024)
    if not path:
        raise ApiError(400, "parameter 'path' (the artifact) is required")
    suffix = PurePosixPath(path).suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        raise ApiError(
            400,
            f"no preview for {suffix or 'files without a suffix'}",
            hint="text, Markdown, JSON, YAML, CSV and TSV artifacts preview; download the others",
        )
    art, blob = _artifact(request, path)
    with blob:
        data = blob.read(PREVIEW_BYTES)
    complete = art["size"] <= PREVIEW_BYTES
    if suffix not in (".csv", ".tsv"):
        body = data.decode("utf-8", "replace")
        return json_response(
            {"kind": "text", "format": FORMATS.get(suffix, "text"), "text": body, "truncated": not complete}
        )
    lines = data.decode("utf-8", "replace").splitlines()
    if not complete:
        lines = lines[:-1]  # the last line may be cut
    rows = list(
        csv.reader(io.StringIO("\n".join(lines[: PREVIEW_ROWS + 1])), delimiter="\t" if suffix == ".tsv" else ",")
    )
    header, body_rows = (rows[0], rows[1:]) if rows else ([], [])
    truncated = len(lines) > PREVIEW_ROWS + 1 or not complete
    return json_response({"kind": "table", "columns": header, "rows": body_rows, "truncated": truncated})
