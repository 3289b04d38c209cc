"""A job's data inputs and outputs where it runs (standard library only): the same code on this machine,
an SSH host and a Ray node.

Inputs arrive as manifests (:func:`manifest` shape: name, mode, type, files by content). Each file's
bytes live once in the node's cache: ``blobs/<sha256>`` (checked against its hash when stored) or
``refs/<id>`` (a file of a reference that its store vouches for by checksum; the id covers its source,
path, size and that checksum, which was checked when it was fetched). :func:`materialise` lays an input
out in the run folder under :data:`INPUTS_DIR`: ``mount`` as read-only hard links to the cached files
(no byte copied; for a root process outside a container, read-only copies: root writes through any
mode), ``download`` as private, writable copies (the script may change them).

A download's copy is made once: when its run folder goes (:func:`release_run_folder`), a copy the
script left as it was lent becomes that version's spare, taken by the next run of the same files with
one rename (:mod:`mltrain.remote.spares`).

A cached file is read-only and has a fixed modification time. Before it is used again its size, mode
and time are checked (one ``stat``); one that changed (a script that wrote through a mount) is hashed
and repaired, or dropped and fetched again, so a change never reaches a later run. A script running as
the cache's owner can still write a file and set its mode and time back: only a container's read-only
bind mount (Docker) makes a mount truly unchangeable.

``${inputs.NAME}`` and ``${outputs.NAME}`` in a job's arguments and variables become the paths on the
node (:func:`substitute`); the script also gets them as ``MLTRAIN_INPUT_NAME`` / ``MLTRAIN_OUTPUT_NAME``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from typing import Any, BinaryIO

from mltrain.remote import spares
from mltrain.remote.cachedir import cache_dir as default_cache_root
from mltrain.remote.placeholders import PLACEHOLDER
from mltrain.remote.ssh_host import is_blob_name, lay_out

INPUTS_DIR = ".mltrain/inputs"  # in the run folder: one folder (or file) per input
OUTPUTS_DIR = "outputs/data"  # in the run folder: one folder per output, collected with outputs/
MANIFEST_FILE = ".mltrain/inputs.json"  # the manifests, where a node reads them (a snapshot staged for Ray)
CARRIED_DIR = ".mltrain/carried"  # in a staged snapshot: a cache of the files carried through the cluster
SNAPSHOT_FILE = ".mltrain/snapshot.json"  # in a staged folder: the snapshot's files, fetched by the node itself
ENV_INPUT, ENV_OUTPUT = "MLTRAIN_INPUT_", "MLTRAIN_OUTPUT_"
CACHE_MTIME_NS = 1_000_000_000 * 10**9  # the modification time of every cached file (a stamp: unchanged)
CACHE_MODE = 0o444
CHUNK = 1 << 20
MOUNT, DOWNLOAD, DIRECT = "mount", "download", "direct"
SPARES = "spares"  # in a node cache: ready private copies of download inputs (see the module's docstring)


class InputError(Exception):
    """An input cannot be delivered (a missing or changed file, a bad manifest)."""


def file_key(entry: list[Any]) -> str:
    """The cache key of a manifest file ``[relpath, size, sha256, ref]``: ``blobs/<sha256>`` or ``refs/<id>``
    (never a path: both are 64 hex characters)."""
    _rel, _size, sha, ref = entry
    if sha is not None:
        if not is_blob_name(sha):
            raise InputError(f"bad sha256 {str(sha)[:80]!r} in an input manifest")
        return f"blobs/{sha}"
    if not is_blob_name(ref):
        raise InputError(f"bad reference id {str(ref)[:80]!r} in an input manifest")
    return f"refs/{ref}"


def _check_rel(rel: object) -> str:
    parts = rel.split("/") if isinstance(rel, str) else []
    if not parts or rel.startswith("/") or "\x00" in rel or any(p in ("", ".", "..") for p in parts):  # type: ignore[union-attr]
        raise InputError(f"refusing the input path {str(rel)[:200]!r}: it is absolute or leaves its folder")
    return rel  # type: ignore[return-value]


def check_paths(inp: dict[str, Any]) -> None:
    """InputError when a file of manifest ``inp`` would leave its input's folder (absolute, ``..``)."""
    for entry in inp["files"]:
        _check_rel(entry[0])


# -- paths and placeholders ---------------------------------------------------------------------------
def input_path(run_dir: str, inp: dict[str, Any]) -> str:
    """Where input ``inp`` is for a job whose run folder is ``run_dir``: its folder (its file, for a
    ``uri_file``), or the URI itself for ``direct``."""
    if inp["mode"] == DIRECT:
        return str(inp["uri"])
    folder = os.path.join(run_dir, INPUTS_DIR, inp["name"])
    if inp["type"] == "uri_file" and inp["files"]:
        return os.path.join(folder, _check_rel(inp["files"][0][0]))
    return folder


def io_paths(run_dir: str, inputs: list[dict[str, Any]], outputs: list[str]) -> dict[str, str]:
    """``{"inputs.NAME": path, "outputs.NAME": path}`` for a run folder at ``run_dir``."""
    paths = {f"inputs.{i['name']}": input_path(run_dir, i) for i in inputs}
    paths.update({f"outputs.{name}": os.path.join(run_dir, OUTPUTS_DIR, name) for name in outputs})
    return paths


def substitute(text: str, paths: dict[str, str]) -> str:
    """``text`` with each ``${inputs.NAME}`` / ``${outputs.NAME}`` replaced by its path (an unknown one is kept)."""
    return PLACEHOLDER.sub(lambda m: paths.get(f"{m.group(1)}.{m.group(2)}", m.group(0)), text)


def io_environment(paths: dict[str, str]) -> dict[str, str]:
    """``MLTRAIN_INPUT_NAME`` / ``MLTRAIN_OUTPUT_NAME`` of each path."""
    out = {}
    for key, path in paths.items():
        kind, _, name = key.partition(".")
        out[(ENV_INPUT if kind == "inputs" else ENV_OUTPUT) + name] = path
    return out


def real_folder(run_dir: str, rel: str) -> str:
    """The folder ``rel`` of ``run_dir``, made; InputError when a part of it is a link leading elsewhere
    (a run folder's files come from a snapshot a user controls)."""
    root = os.path.realpath(run_dir)
    os.makedirs(root, exist_ok=True)
    path = root
    for part in _check_rel(rel).split("/"):
        path = os.path.join(path, part)
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            raise InputError(f"{os.path.join(run_dir, rel)}: {path} leads out of the run folder (a link or a file)")
        os.makedirs(path, exist_ok=True)
    return path


def prepare_outputs(run_dir: str, outputs: list[str]) -> None:
    """Make the folder of each output, so the script can write into it at once."""
    for name in outputs:
        real_folder(run_dir, f"{OUTPUTS_DIR}/{name}")


# -- the node's cache -------------------------------------------------------------------------------
def _sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class NodeCache:
    """Cached input files under ``root`` (``blobs/``, ``refs/``); safe to share between processes."""

    def __init__(self, root: str) -> None:
        self.root = root

    def path(self, key: str) -> str:
        kind, _, name = key.partition("/")
        if kind not in ("blobs", "refs") or not is_blob_name(name):
            raise InputError(f"bad cache key {key[:100]!r}")
        return os.path.join(self.root, kind, name)

    def present(self, entry: list[Any]) -> bool:
        """Whether the file of manifest entry ``entry`` is cached and unchanged. One that looks touched is
        hashed: repaired (mode and time) when its content is right, else removed (fetch it again)."""
        path = self.path(file_key(entry))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        size, sha = int(entry[1]), entry[2]
        if st.st_size == size and stat.S_IMODE(st.st_mode) == CACHE_MODE and st.st_mtime_ns == CACHE_MTIME_NS:
            return True
        if st.st_size == size and sha is not None and _sha256_of(path) == sha:
            _seal(path)  # e.g. a blob an SSH upload of a snapshot wrote: right content, another mode
            return True
        _remove(path)
        return False

    def missing(self, files: list[list[Any]]) -> list[str]:
        """The cache keys of ``files`` that are not cached (or were dropped as changed), each once."""
        return sorted({file_key(e) for e in files if not self.present(e)})

    def store(self, entry: list[Any], stream: BinaryIO, counter: Callable[[int], None] | None = None) -> int:
        """Write ``stream`` as the cached file of ``entry``: beside it first, checked (size; sha256 when
        known), then renamed into place read-only. InputError (nothing left) when it does not match."""
        path = self.path(file_key(entry))
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".incoming-")
        try:
            h = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    if counter is not None:
                        counter(len(chunk))
            if size != int(entry[1]) or (entry[2] is not None and h.hexdigest() != entry[2]):
                got = f"{size} bytes, sha256 {h.hexdigest()}"
                raise InputError(f"{entry[0]}: the content is not the one recorded ({got})")
            _seal(tmp)
            os.replace(tmp, path)
        except BaseException:
            _remove(tmp)
            raise
        return size


class Limited:
    """The next ``size`` bytes of ``stream``, then end of file (a file of a stream of files)."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream, self.left = stream, size

    def read(self, n: int = -1) -> bytes:
        want = self.left if n < 0 else min(n, self.left)
        data = self.stream.read(want) if want > 0 else b""
        self.left -= len(data)
        return data


def receive(cache: NodeCache, stream: BinaryIO) -> tuple[int, int]:
    """Store files that come one after another on ``stream`` (each a JSON line, its manifest entry
    ``[relpath, size, sha256, ref]``, then its bytes) in ``cache``, each checked before it takes its name:
    (files, bytes). InputError when one is not the content recorded or the stream ends inside it."""
    files = total = 0
    while line := stream.readline():
        entry = json.loads(line)
        if not isinstance(entry, list) or len(entry) != 4:
            raise InputError(f"bad file header {line[:200]!r}")
        total += cache.store(entry, Limited(stream, int(entry[1])))  # type: ignore[arg-type]
        files += 1
    return files, total


def _seal(path: str) -> None:
    os.chmod(path, CACHE_MODE)
    os.utime(path, ns=(CACHE_MTIME_NS, CACHE_MTIME_NS))


def _remove(path: str) -> None:
    try:
        os.chmod(path, 0o644)
        os.unlink(path)
    except FileNotFoundError:
        pass


# -- laying inputs out in a run folder -----------------------------------------------------------------
def _place(cache: NodeCache, entry: list[Any], dest: str, mode: str, link: bool) -> int:
    """The cached file of ``entry`` at ``dest``: a hard link (``link``) or a copy (read-only for a mount);
    bytes copied."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    src = cache.path(file_key(entry))
    if link:
        try:
            os.link(src, dest)
            return 0
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
    shutil.copyfile(src, dest)
    os.chmod(dest, CACHE_MODE if mode == MOUNT else 0o644)
    return int(entry[1])


def materialise(cache: NodeCache, inp: dict[str, Any], run_dir: str, bound_read_only: bool = False) -> int:
    """Lay input ``inp`` out under ``run_dir`` from the cache (every file must be cached); bytes copied.
    A mount is hard links to the cached files, unless this process runs as root and the folder will not be
    bound read-only (``bound_read_only``: a container's bind mount): root writes through any file mode, so
    it gets read-only copies and the cache stays as it is whatever the script does."""
    if inp["mode"] == DIRECT:
        return 0
    missing = [e[0] for e in inp["files"] if not cache.present(e)]
    if missing:
        raise InputError(f"input {inp['name']}: not in this node's cache: {', '.join(missing[:5])}")
    base = os.path.join(real_folder(run_dir, INPUTS_DIR), _check_rel(inp["name"]))
    if os.path.lexists(base):
        raise InputError(f"input {inp['name']}: {base} exists already")
    if inp["mode"] == DOWNLOAD and spares.claim(os.path.join(cache.root, SPARES), base, _lent_files(inp)):
        return 0
    link = inp["mode"] == MOUNT and (bound_read_only or os.geteuid() != 0)
    copied = 0
    for entry in inp["files"]:
        copied += _place(cache, entry, os.path.join(base, _check_rel(entry[0])), inp["mode"], link)
    if inp["mode"] == DOWNLOAD:
        spares.lend(os.path.join(cache.root, SPARES), base, _lent_files(inp))
    return copied


def _lent_files(inp: dict[str, Any]) -> spares.Lent:
    return spares.Lent(inp["type"], {_check_rel(e[0]): int(e[1]) for e in inp["files"]}, inp["files"])


def release_run_folder(run_dir: str, cache: NodeCache | None = None, remove: bool = True) -> None:
    """Release a run folder's inputs (the copies its script left untouched become spares in ``cache``,
    default this node's), then remove the folder (only its inputs, unless ``remove``)."""
    inputs = os.path.join(run_dir, INPUTS_DIR)
    if os.path.isdir(inputs) and not os.path.islink(inputs):
        cache = cache or node_cache()
        for name in os.listdir(inputs):
            spares.recycle(os.path.join(cache.root, SPARES), os.path.join(inputs, name))
    shutil.rmtree(run_dir if remove else inputs, ignore_errors=True)


def changed_mounts(cache: NodeCache, inputs: list[dict[str, Any]]) -> list[str]:
    """After a run: the files of its mounted inputs whose cached copy changed (those are repaired or
    dropped), as ``NAME/relpath``."""
    return [
        f"{inp['name']}/{e[0]}" for inp in inputs if inp["mode"] == MOUNT for e in inp["files"] if not cache.present(e)
    ]


def mount_problem(changed: list[str], where: str) -> str:
    """The problem reported for a run whose script changed files of its mounted inputs (``NAME/relpath``)."""
    return (
        f"the script changed its mounted input files {', '.join(changed[:10])}: {where}'s cached copies were "
        "repaired or dropped (a later run fetches them again); write to a copy (mode: download) instead"
    )


# -- a node fetching what it can reach itself (Ray) -----------------------------------------------------
def fetch_direct(cache: NodeCache, entry: list[Any], hint: dict[str, Any], timeout: float = 60.0) -> bool:
    """Fetch ``entry`` into the cache from where ``hint`` says it is (``{"url", "etag"}``: a signed URL of an
    object store); False when it cannot be reached (InputError when it was reached and is not the recorded
    content)."""
    if "url" in hint:
        try:
            import urllib.request  # here: ssl and http.client cost a run without such inputs 50 ms

            response = urllib.request.urlopen(str(hint["url"]), timeout=timeout)  # noqa: S310 - a signed https/http URL
        except OSError:
            return False
        with response:
            etag = (response.headers.get("ETag") or "").strip('"')
            if hint.get("etag") and etag != hint["etag"]:
                raise InputError(f"{entry[0]} changed at its source (ETag {etag}, recorded {hint['etag']})")
            cache.store(entry, response)
        return True
    return False


def fetch_snapshot(source: str, run_dir: str, log: Callable[[str], None] | None = None) -> str | None:
    """Lay out in ``run_dir`` the snapshot that ``source``'s :data:`SNAPSHOT_FILE` lists ({files: [[path,
    sha256, size, mode], ...], hints: {sha256: {url}}}), from this node's cache, each blob it lacks fetched
    by its signed URL and checked against its name; None when done (or there is no such file), else why
    not (the store out of reach, a blob that is not what its name says: the driver then carries it)."""
    try:
        with open(os.path.join(source, SNAPSHOT_FILE)) as f:
            listed = json.load(f)
    except FileNotFoundError:
        return None
    cache, hints = node_cache(), dict(listed.get("hints") or {})
    moved = files = 0
    for path, sha, size, _mode in listed["files"]:
        try:
            entry = [_check_rel(path), int(size), sha, None]
            if cache.present(entry):
                continue
            if not fetch_direct(cache, entry, dict(hints.get(sha) or {})):
                return f"{path} could not be fetched from the artifact root"
        except InputError as exc:
            return str(exc)
        moved, files = moved + int(size), files + 1
    missing = lay_out(run_dir, os.path.join(cache.root, "blobs"), listed["files"])
    if missing:
        return f"{len(missing)} files of the snapshot are not in this node's cache"
    if log is not None:
        log(f"snapshot: {moved} bytes fetched from the artifact root into this node's cache ({files} files)")
    return None


def write_manifests(
    folder: str, inputs: list[dict[str, Any]], outputs: list[str], hints: dict[str, dict[str, Any]] | None = None
) -> None:
    """The manifests of a run's inputs, its outputs' names and how a node may fetch each file itself
    (``hints``: cache key -> :func:`fetch_direct` hint) as :data:`MANIFEST_FILE` under ``folder``."""
    path = os.path.join(folder, MANIFEST_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"inputs": inputs, "outputs": outputs, "hints": hints or {}}, f)


def read_manifests(folder: str) -> tuple[list[dict[str, Any]], list[str], dict[str, dict[str, Any]]]:
    """What :func:`write_manifests` wrote under ``folder`` (nothing when there is no file)."""
    try:
        with open(os.path.join(folder, MANIFEST_FILE)) as f:
            data = json.load(f)
    except FileNotFoundError:
        return [], [], {}
    return list(data.get("inputs") or []), [str(n) for n in data.get("outputs") or []], dict(data.get("hints") or {})


def node_cache() -> NodeCache:
    """This node's cache of input files (``data/`` in :func:`default_cache_root`)."""
    return NodeCache(os.path.join(default_cache_root(), "data"))


def _fetch_on_node(cache: NodeCache, carried: NodeCache, inp: dict[str, Any], hints: dict[str, Any]) -> tuple[int, int]:
    """Fill ``cache`` with the files of ``inp`` it lacks: from where its hint says (the datastore), else
    from the copy carried through the cluster; (bytes, files) moved."""
    moved = files = 0
    for key in cache.missing(inp["files"]):
        entry = next(e for e in inp["files"] if file_key(e) == key)
        hint = hints.get(key)
        if not (hint and fetch_direct(cache, entry, hint)):
            if not os.path.isfile(carried.path(key)):
                raise InputError(
                    f"input {inp['name']}: {entry[0]} cannot be fetched on this node (its store is out of reach "
                    "and it was not carried with the job)"
                )
            with open(carried.path(key), "rb") as f:
                cache.store(entry, f)
        moved += int(entry[1])
        files += 1
    return moved, files


def deliver_on_node(source: str, run_dir: str, where: str, log: Callable[[str], None]) -> dict[str, str]:
    """For a job whose working folder ``source`` holds :data:`MANIFEST_FILE` (a Ray job): its inputs in
    ``run_dir`` from this node's cache, fetched first when missing (:func:`_fetch_on_node`), and its
    outputs' folders made; ``{"inputs.NAME": path, ...}`` (empty when the job has no data)."""
    inputs, outputs, hints = read_manifests(source)
    if not inputs and not outputs:
        return {}
    cache, carried = node_cache(), NodeCache(os.path.join(source, CARRIED_DIR))
    for inp in inputs:
        if inp["mode"] == DIRECT:
            continue
        moved, files = _fetch_on_node(cache, carried, inp, hints)
        materialise(cache, inp, run_dir)
        if files:
            log(f"input {inp['name']}: {moved} bytes moved into {where}'s cache ({files} files)")
        else:
            log(f"input {inp['name']}: 0 bytes moved (all in {where}'s cache)")
    prepare_outputs(run_dir, outputs)
    return io_paths(run_dir, inputs, outputs)


def resolve_job(argv: list[str], env: dict[str, str], paths: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """A job's arguments and environment with ``${inputs.NAME}`` / ``${outputs.NAME}`` resolved to ``paths``
    and ``MLTRAIN_INPUT_NAME`` / ``MLTRAIN_OUTPUT_NAME`` added."""
    if not paths:
        return argv, env
    resolved = {k: substitute(v, paths) if PLACEHOLDER.search(v) else v for k, v in env.items()}
    return [substitute(a, paths) for a in argv], {**resolved, **io_environment(paths)}
