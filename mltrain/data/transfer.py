"""Reading a recorded version back: ``download`` it to a folder, ``check`` it against its source.

Every path of a manifest is untrusted: one that is absolute, holds ``..`` or resolves out of the
destination (through a symlink in it) is refused before anything is written. Each file is streamed
to a temporary file beside its target, verified (size, and sha256 where recorded; a reference's
store checksum is compared before reading) and only then renamed into place, so a failed or
interrupted download leaves no half file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from mltrain.data.create import local_files, uri_scheme
from mltrain.data.parallel import run_all
from mltrain.data.progress import Progress
from mltrain.errors import DataError
from mltrain.workspace.data import DataVersion, ManifestEntry
from mltrain.workspace.datastores import open_datastore
from mltrain.workspace.datastores.base import (
    ContentMismatch,
    Datastore,
    blob_key,
    check_key,
    drain,
)
from mltrain.workspace.datastores.folder import write_whole
from mltrain.workspace.paths import UnsafePathError, check_relpath, safe_join

if TYPE_CHECKING:
    from mltrain.workspace import Workspace


def location(version: DataVersion) -> str:
    """The folder a reference version's files are relative to (the source, or a file's parent)."""
    return version.source if version.type == "uri_folder" else version.source.rstrip("/").rpartition("/")[0]


def open_source(ws: Workspace, version: DataVersion) -> tuple[Datastore, Callable[[ManifestEntry], str]]:
    """The store holding a version's bytes and the key of each manifest entry in it: the blob of its
    sha256 for a stored version, its path under the source for a reference."""
    store = open_datastore(version.datastore_config, ws.settings.artifact_root, version.datastore)
    if version.stored:
        return store, lambda e: blob_key(str(e.sha256))
    return store.at(location(version)), lambda e: check_key(e.relpath, version.ref)


def changed_at_source(version: DataVersion, relpath: str) -> DataError:
    return DataError(
        f"{relpath} changed at its source since {version.ref} was recorded",
        hint=f"`mltrain data check {version.name}:{version.version}` lists what changed; create a new version",
    )


def _targets(version: DataVersion, root: Path) -> list[tuple[ManifestEntry, Path]]:
    try:
        return [(e, safe_join(root, check_relpath(e.relpath))) for e in version.manifest]
    except UnsafePathError as exc:
        raise DataError(f"{version.ref}: {exc.message}", hint=exc.hint) from None


def _fetch(
    store: Datastore, key: str, entry: ManifestEntry, target: Path, version: DataVersion, progress: Progress
) -> None:
    try:  # a reference's file is read only while it has the checksum recorded
        src = store.open(key) if entry.checksum is None else store.open_version(key, entry.checksum)
    except ContentMismatch:
        raise changed_at_source(version, entry.relpath) from None
    with src:
        where = f"{entry.relpath} of {version.ref} in {store.url}"
        write_whole(target, src, where, entry.sha256, entry.size, progress.add, prefix=f".{target.name[:40]}.")
    progress.file_done()


def download(
    ws: Workspace,
    version: DataVersion,
    dest: str | os.PathLike[str],
    report: Callable[[Progress], None] | None = None,
) -> Path:
    """Write the version's files under ``dest`` (its file, for a ``uri_file``); return that path."""
    root = Path(dest).expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise DataError(f"{root} is a file", hint="give a folder to download into")
    targets = _targets(version, root)
    store, key_of = open_source(ws, version)
    progress = Progress(version.size, version.file_count, report)
    root.mkdir(parents=True, exist_ok=True)
    run_all(lambda job: _fetch(store, key_of(job[0]), job[0], job[1], version, progress), targets, progress)
    if report is not None:
        report(progress)
    return targets[0][1] if version.type == "uri_file" else root


@dataclass(frozen=True)
class CheckReport:
    """How a version's source differs from what was recorded (paths relative to the version)."""

    version: DataVersion
    changed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # recorded, no longer at the source
    new: tuple[str, ...] = ()  # at the source, not in the version
    missing_blobs: tuple[str, ...] = ()  # stored versions: recorded files whose blob is gone from the datastore

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.new or self.missing_blobs)


def _local_now(version: DataVersion) -> dict[str, tuple[int, Callable[[], BinaryIO]]]:
    src = Path(version.source)
    if not src.exists() or (version.type == "uri_file") != src.is_file():
        return {}
    return {f.relpath: (f.size, lambda f=f: open(f.path, "rb")) for f in local_files(src)}


def check(ws: Workspace, version: DataVersion, report: Callable[[Progress], None] | None = None) -> CheckReport:
    """Re-read the version's source (a local folder or a URI) and compare it with the manifest:
    sizes first, then sha256 (read again) or the store's checksum."""
    recorded = {e.relpath: e for e in version.manifest}
    progress = Progress(version.size, version.file_count, report)
    missing_blobs: list[str] = []
    if version.stored:
        store, key_of = open_source(ws, version)
        missing_blobs = [e.relpath for e in version.manifest if not store.exists(key_of(e))]
        if uri_scheme(version.source) is not None:
            raise DataError(f"{version.ref} records a local source, not {version.source!r}")
        now = _local_now(version)
        checksums: dict[str, str | None] = {}
    else:
        store, _ = open_source(ws, version)
        if version.type == "uri_file":
            key = version.manifest[0].relpath
            listed = [store.info(key)] if store.exists(key) else []
        else:
            listed = store.list()
        now = {f.key: (f.size, lambda f=f: store.open(f.key)) for f in listed}
        checksums = {f.key: f.checksum for f in listed}
    changed = []
    for rel in sorted(set(recorded) & set(now)):
        entry, (size, opener) = recorded[rel], now[rel]
        if size != entry.size:
            changed.append(rel)
        elif entry.sha256 is None:
            if checksums.get(rel) != entry.checksum:
                changed.append(rel)
        else:
            with opener() as stream:
                if drain(stream, progress.add)[0] != entry.sha256:
                    changed.append(rel)
        progress.file_done()
    if report is not None:
        report(progress)
    return CheckReport(
        version,
        changed=tuple(changed),
        missing=tuple(sorted(set(recorded) - set(now))),
        new=tuple(sorted(set(now) - set(recorded))),
        missing_blobs=tuple(missing_blobs),
    )
