"""Files to an SSH host through its content-addressed blob cache.

A run folder (or an image's build context) is a list of files by sha256: the host says which blobs
its cache lacks (one round trip), only those travel (each checked against its hash as it is sent,
in one stream of the helper's ``receive``: :func:`send_files`, which a run's inputs take too), then
the host makes the folder from its cache. :class:`BlobSync` counts what moved.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mltrain.compute.ssh.conn import SEND_PIECE
from mltrain.errors import ComputeError

if TYPE_CHECKING:
    from mltrain.compute.base import RunSpec
    from mltrain.compute.ssh.conn import Remote
    from mltrain.workspace import Workspace
    from mltrain.workspace.blobs import BlobStore

SHIM_IN_RUN = ".mltrain/shim"  # where the in-script API goes in a remote run folder
URL_EXPIRES_S = 900  # a signed URL handed to a host, used at once
LINK_PIECE = 1 << 20  # bytes per frame of an OpenSSH link (a pipe: paramiko's limit, SEND_PIECE, is not its)


class BlobFiles(Mapping[str, Path]):
    """The local file of each offered blob: ``extra`` files as they are, the others from the blob store
    when first asked for (an object store's blob is fetched into its cache only if a host lacks it and
    cannot fetch it itself: :meth:`urls`)."""

    def __init__(self, blobs: BlobStore, sizes: dict[str, int], extra: dict[str, Path]) -> None:
        self._blobs, self._sizes, self._extra = blobs, sizes, extra
        self._shas = set(sizes) | set(extra)

    def urls(self, shas: list[str]) -> list[tuple[list[Any], dict[str, Any]]]:
        """(manifest entry, {url}) of the blobs of ``shas`` a host may fetch from the store itself (signed
        URLs of an object store; none for a folder): the request of the helper's ``fetch``."""
        found: list[tuple[list[Any], dict[str, Any]]] = []
        for sha in shas:
            if sha in self._sizes and sha not in self._extra:
                url = self._blobs.signed_url(sha, URL_EXPIRES_S)
                if url is None:
                    return []
                found.append(([sha, self._sizes[sha], sha, None], {"url": url}))
        return found

    def __getitem__(self, sha: str) -> Path:
        if sha not in self._shas:
            raise KeyError(sha)
        return self._extra.get(sha) or self._blobs.local_file(sha)

    def __iter__(self) -> Iterator[str]:
        return iter(self._shas)

    def __len__(self) -> int:
        return len(self._shas)


@dataclass
class Upload:
    """What a run's folder is made of: (path, sha256, size, mode) and the local file of each blob."""

    files: list[tuple[str, str, int, int]]
    local: Mapping[str, Path]
    deferred: bool = False  # the job's start request makes the folder (no round trip of its own)


def upload_of(ws: Workspace, spec: RunSpec) -> Upload:
    """The files of ``spec``'s run folder: its snapshot, and the in-script API under :data:`SHIM_IN_RUN`."""
    from mltrain.workspace.blobs import sha256_file
    from mltrain.workspace.snapshots import restored_mode

    snapshot = ws.snapshots.get(spec.snapshot_id)
    files = [(f.path, f.sha256, f.size, restored_mode(f.mode)) for f in snapshot.files]
    shim: dict[str, Path] = {}
    if spec.shim_dir is not None:
        for path in sorted(Path(spec.shim_dir).rglob("*.py")):
            sha = sha256_file(path)
            files.append((f"{SHIM_IN_RUN}/{path.relative_to(spec.shim_dir).as_posix()}", sha, 0, 0o644))
            shim[sha] = path
    return Upload(files, BlobFiles(ws.blobs, {f.sha256: f.size for f in snapshot.files}, shim))


def fetch_on_host(remote: Remote, files: list[tuple[list[Any], dict[str, Any]]]) -> set[str]:
    """Have the host fetch ``files`` (manifest entry, hint) into its cache itself; the cache keys it fetched."""
    return set(remote.agent("fetch", request={"files": files})["fetched"]) if files else set()


class BlobSync:
    def __init__(self) -> None:
        self.stats = {"blobs_sent": 0, "bytes_sent": 0, "blobs_present": 0, "blobs_fetched": 0}
        self.stats.update(outputs_stored=0, bytes_received=0)  # output files a host stored itself; archive bytes
        self._lock = threading.Lock()

    def count(self, **moved: int) -> None:
        with self._lock:
            for key, n in moved.items():
                self.stats[key] += n

    def send_blobs(self, remote: Remote, missing: list[str], local: Mapping[str, Path]) -> int:
        """Upload the blobs ``missing`` on ``remote`` (each from its file in ``local``); bytes sent. Blobs
        of an object store the host fetches from there itself (by signed URL); those it cannot reach or
        that are not what their name says are sent."""
        urls = local.urls(missing) if isinstance(local, BlobFiles) else []
        fetched = {key.removeprefix("blobs/") for key in fetch_on_host(remote, urls)}
        for sha in missing:
            if sha not in local:
                raise ComputeError(f"{remote.label} asked for a blob that was not offered: {sha}")
        sent = put_blobs(remote, [(local[sha], sha) for sha in missing if sha not in fetched])
        with self._lock:
            self.stats["blobs_sent"] += len(missing) - len(fetched & set(missing))
            self.stats["blobs_fetched"] += len(fetched & set(missing))
            self.stats["bytes_sent"] += sent
        return sent

    def materialise(self, remote: Remote, run_id: str, up: Upload, defer: bool = False) -> None:
        """Make the run folder on ``remote``: one round trip when the host has every blob; else the
        missing ones are sent (:func:`send_files`), then one more. No round trip when the host's warm helper runs and
        either ``defer`` or this process saw the host hold every blob already: the job's start request
        makes the folder (``deferred``; a host that lacks blobs then says which)."""
        shas = {sha for _p, sha, _s, _m in up.files}
        up.deferred = remote.serving and (defer or shas <= remote.known_blobs)
        if up.deferred:
            return
        request = {"files": up.files}
        missing = remote.agent("materialise", run_id, request=request)["missing"]
        self.send_blobs(remote, missing, up.local)
        if missing and remote.agent("materialise", run_id, request=request)["missing"]:
            raise ComputeError(f"the upload of run {run_id} to {remote.label} did not complete")
        self.made(remote, up, len(missing))

    def made(self, remote: Remote, up: Upload, sent: int) -> None:
        """The run folder of ``up`` exists on ``remote``, ``sent`` of its blobs uploaded for it."""
        remote.known_blobs |= {sha for _p, sha, _s, _m in up.files}
        with self._lock:
            self.stats["blobs_present"] += len(up.local) - sent


def put_blobs(remote: Remote, files: list[tuple[Path, str]]) -> int:
    """Upload files into the host's blob cache, each as its sha256 (:func:`send_files`; hashed here as
    it is read too: content that does not match its name is refused, WorkspaceError); bytes sent."""
    from mltrain.workspace.blobs import check_sha256

    def opener(local: Path) -> Callable[[ExitStack], BinaryIO]:
        return lambda stack: stack.enter_context(open(local, "rb"))

    out = []
    for local, sha256 in files:
        entry = [f"blobs/{check_sha256(sha256)}", local.stat().st_size, sha256, None]
        out.append(Outgoing(entry, opener(local), str(local), hashed=True))
    return send_files(remote, out)


@dataclass(frozen=True)
class Outgoing:
    """A file for a host's cache: its manifest entry ``[cache key, size, sha256 or None, ref]`` (the
    host checks it), its bytes (opened when its turn comes) and what it is, for errors (``where``).
    ``hashed``: hashed here too as it is read (a blob of this machine's store: WorkspaceError when
    its content is not its name)."""

    entry: list[Any]
    open: Callable[[ExitStack], BinaryIO]
    where: str
    hashed: bool = False


def send_files(remote: Remote, files: list[Outgoing]) -> int:
    """Send ``files`` into the host's cache in one stream of the helper's ``receive`` (per file its
    entry, a JSON line, then its bytes), over the host's link (OpenSSH where it is, else paramiko):
    the host stores each beside its name first and renames it once it is the size and sha256
    recorded. A file whose source gives another size (ComputeError), fails or, ``hashed``, gives other
    content ends the stream before its last piece: the host keeps the files before it, nothing of it,
    and the error is raised once the host is done. Bytes the host stored."""
    if not files:
        return 0
    piece = LINK_PIECE if remote.via == "openssh" else SEND_PIECE
    failed: list[Exception] = []

    def stream() -> Iterator[bytes]:
        try:
            yield from _stream(files, piece)
        except Exception as exc:  # noqa: BLE001 - raised below, once the host has ended the stream
            failed.append(exc)  # the host reads the end of its input inside a file: it keeps none of it

    code, out, err = remote.agent_exec("receive", stdin=stream(), timeout=600)
    if failed:
        raise failed[0]
    if code != 0:
        detail = err.decode(errors="replace").strip().splitlines()[-5:]
        raise ComputeError(f"on {remote.label}, files sent to its cache were refused: " + " ".join(detail))
    return int(json.loads(out.decode().strip().splitlines()[-1])["bytes"])


def _stream(files: list[Outgoing], most: int) -> Iterator[bytes]:
    """What the host's ``receive`` reads, in pieces of at most ``most`` bytes (a header rides with its
    file's first piece); each file's last piece only once its source ended there."""
    from mltrain.workspace.blobs import HashingReader

    for f in files:
        size, head = int(f.entry[1]), json.dumps(f.entry).encode() + b"\n"
        with ExitStack() as stack:
            stream: Any = f.open(stack)
            if f.hashed:
                stream = HashingReader(stream)
            left, piece = size, b""
            while left:
                piece = stream.read(min(most, left))
                if not piece:
                    break
                left -= len(piece)
                if left:
                    yield head + piece
                    head = b""
            if left or stream.read(1):
                raise ComputeError(f"{f.where} is no longer the {size} bytes recorded: it changed while it was sent")
            if f.hashed:
                stream.check(f.entry[2], f.where)
        yield head + piece
