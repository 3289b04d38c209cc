"""``create``: record a new version of a data asset from a local file or folder, or a URI.

A local file or folder is streamed into the chosen datastore by sha256 (identical files are stored
once, across versions and assets); a URI (``s3://``, ``az://``, ``gs://``, ``https://``, ``file://``)
stays where it is and is recorded with every file's size and the store's checksum (or its sha256,
read now, where the store keeps no checksum). The version, with its whole manifest, is recorded in
one transaction after every blob is stored, so an interrupted create records nothing; blobs are
written atomically, so none is ever half there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mltrain.data.parallel import run_all
from mltrain.data.progress import Progress
from mltrain.errors import DataError
from mltrain.workspace.data import TYPES, DataVersion, ManifestEntry
from mltrain.workspace.datastores import DEFAULT, SCHEME_DATASTORES, open_datastore, workspace_node
from mltrain.workspace.datastores.base import ContentMismatch, Datastore, StoredFile, drain
from mltrain.workspace.names import check_name
from mltrain.workspace.paths import check_relpath, walk_files

if TYPE_CHECKING:
    from mltrain.workspace import Workspace

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
FOLDER_TARGET = "mltrain.workspace.datastores.folder.FolderDatastore"


def uri_scheme(source: str) -> str | None:
    """The scheme of a URI (lower case), None for a local path."""
    m = _SCHEME.match(source)
    return m.group(1).lower() if m else None


def default_datastore(source: str) -> str | None:
    """The datastore that reads ``source`` when none is named: the workspace's for a local path, the
    one of its scheme for a URI, None for ``file://`` (a folder needs no options)."""
    scheme = uri_scheme(source)
    if scheme is None:
        return DEFAULT
    if scheme == "file":
        return None
    if scheme not in SCHEME_DATASTORES:
        raise DataError(
            f"{source!r}: mltrain reads no {scheme}:// URIs",
            hint="use a local path, file://, s3://, az://, abfs://, gs:// or https://",
        )
    return SCHEME_DATASTORES[scheme]


@dataclass(frozen=True)
class LocalFile:
    relpath: str
    path: Path
    size: int
    mtime_ns: int


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def local_files(src: Path) -> list[LocalFile]:
    """Every file of the local file or folder ``src``: a symlink leading out of the folder is refused."""
    if src.is_file():
        return [LocalFile(src.name, src, *_stat(src))]
    outside: list[str] = []
    files = [LocalFile(rel, full, *_stat(full)) for rel, full in walk_files(src, outside.append)]
    if outside:
        raise DataError(
            f"{src} holds symlinks that lead out of it: " + "; ".join(outside[:5]),
            hint="replace each link by the file it points to, or remove it; nothing was stored",
        )
    return sorted(files, key=lambda f: f.relpath)


def changed_while_stored(path: Path) -> DataError:
    return DataError(
        f"{path} changed while it was being stored",
        hint="stop whatever writes to it, then create the version again; nothing was recorded",
    )


def _open_local(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}", hint="check that it is readable") from None


def _store_local(store: Datastore, files: list[LocalFile], progress: Progress) -> list[ManifestEntry]:
    def store_one(f: LocalFile) -> ManifestEntry:
        try:
            sha, size = store.put_blob(lambda: _open_local(f.path), progress.add)
            unchanged = size == f.size and _stat(f.path) == (f.size, f.mtime_ns)
        except ContentMismatch:
            raise changed_while_stored(f.path) from None
        except FileNotFoundError:
            raise DataError(f"{f.path} disappeared while the version was being stored") from None
        if not unchanged:
            raise changed_while_stored(f.path)
        progress.file_done()
        return ManifestEntry(f.relpath, size, sha)

    return run_all(store_one, files, progress)


def _locate(store: Datastore, uri: str, type: str | None) -> tuple[str, Datastore, list[StoredFile]]:
    """(type, store rooted at the version's folder, files) of a URI: a file, else a folder."""
    folder = uri.rstrip("/")
    if type != "uri_folder" and not uri.endswith("/"):
        parent, _, base = folder.rpartition("/")
        at = store.at(parent)
        try:
            return "uri_file", at, [at.info(base)]
        except DataError:
            if type == "uri_file":
                raise
    at = store.at(folder)
    files = at.list()
    if not files:
        raise DataError(f"{uri} holds no files (or does not exist)", hint="check the URI")
    return "uri_folder", at, files


def _reference(store: Datastore, files: list[StoredFile], progress: Progress) -> list[ManifestEntry]:
    entries = []
    for f in files:
        sha = None
        if f.checksum is None:  # the store vouches for nothing: the content's own hash, read now
            with store.open(f.key) as stream:
                sha, size = drain(stream, progress.add)
            if size != f.size:
                raise DataError(f"{f.key} in {store.url} changed while it was being read")
        else:
            progress.add(f.size)
        entries.append(ManifestEntry(f.key, f.size, sha, f.checksum))
        progress.file_done()
    return entries


def open_store(
    ws: Workspace, text: str, datastore: str | None, datastore_config: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any], Datastore]:
    """(name, config node, store) of the datastore that stores or reads ``text`` (a local path or a URI):
    ``datastore`` with ``datastore_config``, else :func:`default_datastore`."""
    scheme = uri_scheme(text)
    datastore = datastore or default_datastore(text)
    if datastore_config is not None:
        node = dict(datastore_config)
    elif datastore == DEFAULT:
        node = workspace_node()
    elif scheme == "file" and datastore is None:
        node, datastore = {"_target_": FOLDER_TARGET, "path": "/"}, "folder"
    else:
        raise DataError(f"datastore {datastore} was given without its config", hint="pass datastore_config")
    store = open_datastore(node, ws.settings.artifact_root, str(datastore))
    if scheme is not None and SCHEME_DATASTORES.get(scheme, "folder") != store.kind:
        raise DataError(
            f"{text} is a {scheme}:// URI but datastore {datastore} is a {store.kind} datastore",
            hint=f"name a {SCHEME_DATASTORES.get(scheme, 'folder')} datastore with --datastore",
        )
    return str(datastore), node, store


def local_manifest(
    store: Datastore,
    text: str,
    type: str | None,
    report: Callable[[Progress], None] | None = None,  # noqa: A002
) -> tuple[str, list[ManifestEntry], str]:
    """Store the local file or folder ``text`` in ``store`` by sha256: (type, manifest, its absolute path)."""
    src = Path(text).expanduser().absolute()
    if not src.exists():
        raise DataError(f"{text} does not exist", hint="give a file, a folder or a URI (s3://, https://, ...)")
    kind = "uri_file" if src.is_file() else "uri_folder"
    if type is not None and type != kind:
        raise DataError(f"{text} is a {'file' if src.is_file() else 'folder'}, not {type}", hint=f"use {kind}")
    files = local_files(src)
    if not files:
        raise DataError(f"the folder {src} holds no files", hint="a data version needs at least one file")
    progress = Progress(sum(f.size for f in files), len(files), report)
    entries = _store_local(store, files, progress)
    if report is not None:
        report(progress)
    return kind, entries, str(src)


def reference_manifest(
    store: Datastore,
    text: str,
    type: str | None,  # noqa: A002
    report: Callable[[Progress], None] | None = None,
    read: bool = True,
) -> tuple[str, Datastore, list[ManifestEntry]]:
    """The URI ``text`` listed where it is: (type, the store rooted at its folder, manifest). A file whose
    store keeps no checksum is read for its sha256, unless not ``read``."""
    kind, at, listed = _locate(store, text, type)
    if not read:
        return kind, at, [ManifestEntry(f.key, f.size, None, f.checksum) for f in listed]
    progress = Progress(sum(f.size for f in listed), len(listed), report)
    entries = _reference(at, listed, progress)
    if report is not None:
        report(progress)
    return kind, at, entries


def create(
    ws: Workspace,
    name: str,
    source: str | os.PathLike[str],
    *,
    type: str | None = None,  # noqa: A002 - the user-facing name
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    datastore: str | None = None,
    datastore_config: Mapping[str, Any] | None = None,
    producer_run_id: str | None = None,
    report: Callable[[Progress], None] | None = None,
    blobs: Mapping[str, tuple[str, int]] | None = None,
) -> DataVersion:
    """Record the next version of ``name`` from ``source`` (a local path or a URI).

    ``datastore`` names the datastore (default: :func:`default_datastore`); ``datastore_config`` is its
    config node (needed for any but the workspace's and ``file://``). ``report`` gets the progress.
    ``blobs``: the folder's files are these blobs of the workspace's store ({relpath: (sha256, size)}: a
    run's files its node stored there itself, each checked by the store), ``source`` only says where
    they were written: nothing is read."""
    check_name(name, "data asset", DataError)
    if type is not None and type not in TYPES:
        raise DataError(f"--type {type!r} is not a data type", hint=f"use one of {', '.join(TYPES)}")
    text = os.fspath(source)
    datastore, node, store = open_store(ws, text, datastore, datastore_config)
    if blobs is not None:
        kind, entries, where = "uri_folder", _stored_manifest(ws, blobs, text), text.rstrip("/")
        stored = True
    elif uri_scheme(text) is None:
        kind, entries, where = local_manifest(store, text, type, report)
        stored = True
    else:
        kind, _at, entries = reference_manifest(store, text, type, report)
        stored, where = False, text.rstrip("/")
    return ws.data.add_version(
        name,
        type=kind,
        source=where,
        stored=stored,
        datastore=datastore,
        datastore_kind=store.kind,
        datastore_config=node,
        manifest=entries,
        description=description,
        tags=tags,
        producer_run_id=producer_run_id,
    )


def _stored_manifest(ws: Workspace, blobs: Mapping[str, tuple[str, int]], source: str) -> list[ManifestEntry]:
    """The manifest of a folder whose files are blobs the workspace's store holds (DataError when one is missing)."""
    entries = [ManifestEntry(check_relpath(rel), size, sha) for rel, (sha, size) in sorted(blobs.items())]
    missing = [e.relpath for e in entries if not ws.blobs.exists(str(e.sha256))]
    if missing:
        raise DataError(f"{', '.join(missing[:5])} of {source} are not in {ws.blobs.url}")
    return entries
