"""Unpacking a job's outputs archive (tar.gz from an SSH host or a Ray node) into its run folder.

The archive is untrusted input: it is streamed (one member at a time, read in chunks, so memory does
not grow with it), what it unpacks to is bounded by ``compute.max_output_mb``, only regular files and
folders under outputs/, logs/ and the run's uploads and metrics file are written (a link or a device
is skipped), never outside the run folder. A refused archive leaves none of its files behind.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path, PurePosixPath

from mltrain.errors import ComputeError
from mltrain.remote.ray_job import PACKED

CHUNK = 1 << 20


def _allowed(name: str) -> bool:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return False
    rel = path.as_posix()
    return any(rel == top or rel.startswith(top + "/") for top in PACKED)


def too_big(limit_mb: float) -> ComputeError:
    return ComputeError(
        f"the job's outputs unpack to more than compute.max_output_mb={limit_mb:g} MB: they were not kept",
        hint="raise compute.max_output_mb, or write large results to shared storage",
    )


def extract_outputs(archive: Path | bytes, run_dir: Path, max_output_mb: float) -> list[str]:
    """Unpack a job's outputs archive (a file, or its bytes) into ``run_dir``; returns the files written.
    Files that exist in the run folder already under logs/ (the driver's own logs) are kept: the job's
    copy gets ``.node``. ComputeError (and nothing of the archive kept) when it is refused."""
    max_bytes = max_output_mb * 1024 * 1024
    root = run_dir.resolve()
    written: list[Path] = []
    total = 0
    tmp: Path | None = None
    try:
        source = io.BytesIO(archive) if isinstance(archive, bytes) else open(archive, "rb")  # noqa: SIM115
        # gzip decompresses only what is read (tarfile's own "r|gz" inflates whole input chunks at once)
        with source, gzip.GzipFile(fileobj=source) as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            while (member := tar.next()) is not None:
                tar.members.clear()  # streamed: no list of every member kept
                if not _allowed(member.name):
                    raise ComputeError(
                        f"the job's outputs archive holds {member.name[:200]!r}, outside outputs/ and logs/",
                        hint="the archive was refused; check what runs on that machine",
                    )
                dest = (root / member.name).resolve()
                if root not in dest.parents:
                    raise ComputeError(f"the job's outputs archive names a path outside the run folder: {member.name}")
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    continue  # a link, a device or a fifo: never written
                total += member.size
                if total > max_bytes:
                    raise too_big(max_output_mb)
                if dest.exists() and member.name.startswith("logs/"):
                    dest = dest.with_name(dest.name + ".node")
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                assert src is not None
                tmp = dest.with_name(f".{dest.name}.part")
                with src, open(tmp, "wb") as out:
                    while chunk := src.read(CHUNK):
                        out.write(chunk)
                os.replace(tmp, dest)
                tmp = None
                written.append(dest)
    except BaseException as exc:
        for path in [*written, *([tmp] if tmp is not None else [])]:
            path.unlink(missing_ok=True)
        if isinstance(exc, tarfile.TarError | OSError | EOFError):
            raise ComputeError(f"cannot unpack the job's outputs: {exc}") from exc
        raise
    return [p.relative_to(root).as_posix() for p in written]
