"""Content-addressed blob store in the artifact root: ``blobs/sha256/ab/cdef...``.

Identical content is stored once. Writes are atomic (written aside, then renamed), so a blob that
exists is complete; readers verify the hash where integrity matters (``verify``).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from mltrain.errors import WorkspaceError

CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


class BlobStore:
    """Blobs under ``root``; every method is safe to call from several processes at once."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._dir = self.root / "blobs" / "sha256"

    def path(self, sha256: str) -> Path:
        """Where the blob ``sha256`` lives (it may not exist)."""
        return self._dir / sha256[:2] / sha256[2:]

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put_file(self, src: str | os.PathLike[str]) -> tuple[str, int]:
        """Store a file; return (sha256, size). Hashes and copies in one pass."""
        with open(src, "rb") as f:
            return self.put_stream(f)

    def put_bytes(self, data: bytes) -> str:
        """Store bytes; return their sha256."""
        return self.put_stream(io.BytesIO(data))[0]

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Store a binary stream; return (sha256, size)."""
        self._dir.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: stream.read(CHUNK), b""):
                    h.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            sha = h.hexdigest()
            dest = self.path(sha)
            if dest.is_file():
                os.unlink(tmp)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, 0o444)
                os.replace(tmp, dest)
            return sha, size
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def read_bytes(self, sha256: str) -> bytes:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError as exc:
            raise WorkspaceError(
                f"blob {sha256} is missing from the artifact root {self.root}",
                hint="the artifact root was moved or pruned; point workspace.artifact_root at the right folder",
            ) from exc

    def copy_to(self, sha256: str, dest: str | os.PathLike[str], verify: bool = False) -> None:
        """Write the blob to ``dest`` (a new, writable file); check its hash when ``verify``.

        The content goes to a temporary file beside ``dest`` first and is renamed into place only when
        complete (and, with ``verify``, when its hash matches), so a bad blob never leaves a file behind.
        """
        src = self.path(sha256)
        if not src.is_file():
            self.read_bytes(sha256)  # raises the explanatory error
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:40]}.", suffix=".part")
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
                for chunk in iter(lambda: f.read(CHUNK), b""):
                    h.update(chunk)
                    out.write(chunk)
            if verify and h.hexdigest() != sha256:
                raise WorkspaceError(
                    f"blob {sha256} is corrupted (its content no longer matches its hash)",
                    hint=f"restore {src} from a backup (`mltrain workspace check` lists every bad blob)",
                )
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
