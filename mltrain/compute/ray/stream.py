"""The driver's side of a Ray job's log stream (written by :mod:`mltrain.remote.ray_job`).

:class:`JobStream` splits the text Ray streams into the script's stdout and stderr (to the sink),
its metrics records (read by the trial through ``read_metrics``), the node it runs on, its exit
code, the files the node uploaded into the artifact root itself (:attr:`JobStream.stored`, unchecked)
and the archive of its other outputs, checked against the sha256 and size the node sent
(:func:`mltrain.compute.archive.extract_outputs` unpacks it into the run folder).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from mltrain.remote.ray_job import (
    ARCHIVE_END,
    CHUNK,
    EXIT,
    METRICS,
    PARTIAL,
    STARTED,
    STDERR,
    STORED,
    TOO_LARGE,
    UNREACHABLE,
)

if TYPE_CHECKING:
    from mltrain.compute.base import OutputSink

ENTRYPOINT_LINE = "Running entrypoint for job "


def too_large(total: str | int, limit: str | float) -> str:
    """Why the outputs did not come back: they are larger than ``compute.max_output_mb``."""
    return (
        f"outputs/ and logs/ of the job are {int(total) / 1e6:.1f} MB, over compute.max_output_mb={limit}: "
        "they were not sent back (raise compute.max_output_mb, or write large results to shared storage)"
    )


class ArchiveFile:
    """The outputs archive of a job, received in pieces into ``path`` and checked at its end
    (sha256 and size as the node computed them)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed by finish
        self._file.write(data)
        self._digest.update(data)

    def finish(self, sha: str, size: int) -> str | None:
        """None when the archive arrived whole (or was empty), else the problem."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if not self.path.exists() and size == 0:
            return None
        if self._digest.hexdigest() != sha or self.path.stat().st_size != size:
            return "the archive of the job's outputs was damaged in transit (checksum mismatch)"
        return None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class JobStream:
    """Decodes one attempt's log; ``feed`` text as it arrives, ``close`` at the end."""

    def __init__(self, mark: str, sink: OutputSink, archive: Path) -> None:
        self.mark = mark
        self.sink = sink
        self.archive_path = archive
        self.started = False  # the wrapper runs (lines before it are Ray's own)
        self.host: str | None = None
        self.exit_code: int | None = None
        self.archive_ok = False
        self.problem: str | None = None  # why the outputs did not come back
        self.unreachable: str | None = None  # why the node could not fetch the snapshot from the store
        self.stored: list[object] = []  # what the node says it uploaded itself: [path, sha256, size, N] each
        self.lines = 0  # complete lines handled (a re-opened stream skips them)
        self._skip = 0
        self._partial = ""
        self._metrics = bytearray()
        self._lock = threading.Lock()
        self._archive = ArchiveFile(archive)

    def replay(self) -> None:
        """The stream is read again from its start: skip the lines already handled."""
        self._skip, self._partial = self.lines, ""

    def feed(self, text: str) -> None:
        parts = (self._partial + text).split("\n")
        self._partial = parts.pop()
        for line in parts:
            if self._skip:
                self._skip -= 1
                continue
            self.lines += 1
            self._line(line)

    def close(self) -> None:
        if self._partial and not self._skip:
            self.lines += 1
            self._line(self._partial)
        self._partial = ""
        self._archive.close()

    def read_metrics(self, limit: int) -> bytes:
        with self._lock:
            data = bytes(self._metrics[:limit])
            del self._metrics[:limit]
        return data

    def _line(self, line: str) -> None:
        if not line.startswith(self.mark):
            if self.started:
                self.sink.write(line.encode() + b"\n", "stdout")
            elif line and not line.startswith(ENTRYPOINT_LINE):
                self.sink.write(f"[ray] {line}\n".encode(), "stdout")
            return
        kind, payload = line[len(self.mark) : len(self.mark) + 1], line[len(self.mark) + 1 :]
        if kind == STDERR:
            self.sink.write(payload.encode() + b"\n", "stderr")
        elif kind == METRICS:
            with self._lock:
                self._metrics += payload.encode() + b"\n"
        elif kind in (PARTIAL, "E"):
            try:
                text = str(json.loads(payload))
            except ValueError:
                text = payload
            self.sink.write(text.encode(), "stderr" if kind == "E" else "stdout")
        elif kind == STARTED:
            self.started, self.host = True, payload
        elif kind == CHUNK:
            self._chunk(payload)
        elif kind == ARCHIVE_END:
            self._end_archive(payload)
        elif kind == TOO_LARGE:
            total, limit = (payload.split() + ["?", "?"])[:2]
            self.problem = too_large(total if total.isdigit() else 0, limit)
        elif kind == UNREACHABLE:
            self.unreachable = payload or "no reason given"
        elif kind == STORED:
            try:
                self.stored.append(json.loads(payload))
            except ValueError:
                self.stored.append(payload)  # refused with the rest when checked
        elif kind == EXIT:
            try:
                self.exit_code = int(payload)
            except ValueError:
                self.exit_code = 1

    def _chunk(self, payload: str) -> None:
        try:
            data = base64.b64decode(payload, validate=True)
        except ValueError:
            self.problem = "the archive of the job's outputs was damaged in transit"
            return
        self._archive.write(data)

    def _end_archive(self, payload: str) -> None:
        sha, _, size = payload.partition(" ")
        try:
            problem = self._archive.finish(sha, int(size or -1))
        except (ValueError, OSError):
            problem = "the archive of the job's outputs was damaged in transit (checksum mismatch)"
        if problem:
            self.problem = problem
        elif self.archive_path.exists():
            self.archive_ok = True
