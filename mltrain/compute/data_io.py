"""What the run plan hands a compute target about a job's data: input manifests (files by content, and
where the driver reads their bytes) and the outputs to bring back.

A target never reads a datastore's records: it asks the input's :class:`InputSource` for bytes it does
not have, by file, and lays the files out with :mod:`mltrain.remote.inputs` (the same code on every
node). ``RunSpec.argv`` and ``RunSpec.io_environment`` give the script's arguments and variables with
``${inputs.NAME}`` / ``${outputs.NAME}`` resolved for the run folder where it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from mltrain.remote import inputs as node


@dataclass(frozen=True)
class InputFile:
    """One file of an input: where it sits in the input, its size and what names its content."""

    relpath: str
    size: int
    sha256: str | None = None  # the content's (checked wherever it is stored)
    ref: str | None = None  # without sha256: a reference's id (its source, path, size and store checksum)
    checksum: str | None = None  # a reference's store checksum (``etag:...``), checked when it is fetched

    @property
    def entry(self) -> list[Any]:
        """The manifest entry nodes read: ``[relpath, size, sha256, ref]``."""
        return [self.relpath, self.size, self.sha256, self.ref]

    @property
    def key(self) -> str:
        """Its name in a node's cache (``blobs/<sha256>`` or ``refs/<id>``)."""
        return node.file_key(self.entry)


class InputSource(Protocol):
    """Where the driver reads an input's bytes (a datastore, through the data package)."""

    def open(self, f: InputFile) -> BinaryIO:
        """The file's content; an error naming the file when it changed at its source."""

    def local_path(self, f: InputFile) -> Path | None:
        """A file on this machine that holds the content (unverified: it is hashed as it is copied), if any."""

    def node_hint(self, f: InputFile) -> dict[str, Any] | None:
        """How a node may fetch the file itself (``{"url", "etag"}``: a short-lived signed URL of an object
        store), None when only the driver can read it."""


@dataclass(frozen=True)
class InputSpec:
    """One input of a job: ``mode`` download | mount | direct, ``type`` uri_file | uri_folder."""

    name: str
    mode: str
    type: str
    uri: str  # what it was given as (data:NAME:VERSION, a URI, a path): direct passes it to the script
    digest: str | None
    files: tuple[InputFile, ...] = ()
    source: InputSource | None = field(default=None, compare=False, repr=False)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def manifest(self) -> dict[str, Any]:
        """What a node needs (JSON): name, mode, type, URI and the files."""
        files = [] if self.mode == node.DIRECT else [f.entry for f in self.files]
        return {"name": self.name, "mode": self.mode, "type": self.type, "uri": self.uri, "files": files}


@dataclass(frozen=True)
class OutputSpec:
    """One output of a job: the folder at ``${outputs.NAME}`` becomes a version of data asset ``asset``."""

    name: str
    asset: str
    in_workspace: bool = True  # stored in the workspace's own datastore (the artifact root): a node may write it there
