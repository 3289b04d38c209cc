"""Files to an SSH host through its content-addressed blob cache.

A run folder (or an image's build context) is a list of files by sha256: the host says which blobs
its cache lacks (one round trip), only those travel (each checked against its hash as it is sent:
through the helper's ``receive`` on an OpenSSH link, else by SFTP), then the host makes the folder
from its cache. :class:`BlobSync` counts what moved.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.compute.ssh.conn import SEND_PIECE
from mltrain.compute.ssh.lost import ConnectionLost
from mltrain.compute.ssh.mux import MuxChannel
from mltrain.errors import ComputeError, WorkspaceError

if TYPE_CHECKING:
    from mltrain.compute.base import RunSpec
    from mltrain.compute.ssh.conn import Remote
    from mltrain.workspace import Workspace
    from mltrain.workspace.blobs import BlobStore

SHIM_IN_RUN = ".mltrain/shim"  # where the in-script API goes in a remote run folder
URL_EXPIRES_S = 900  # a signed URL handed to a host, used at once


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
        missing ones go by SFTP, then one more. No round trip when the host's warm helper runs and
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
    """Upload files into the host's blob cache (atomically), each as its sha256 and hashed as it is sent:
    content that does not match its name is refused (WorkspaceError); bytes sent. All in one stream of
    the helper's ``receive`` on an OpenSSH link (no SFTP connection), else one by one by SFTP."""
    from mltrain.workspace.blobs import check_sha256

    for _local, sha256 in files:
        check_sha256(sha256)
    if not files:
        return 0
    if remote.via == "openssh":
        chan = remote.agent_channel("receive", timeout=600)
        if isinstance(chan, MuxChannel):
            return _receive_blobs(remote, chan, files)
        chan.close()
    return sum(_sftp_blob(remote, local, sha256) for local, sha256 in files)


def _sftp_blob(remote: Remote, local: Path, sha256: str) -> int:
    """One file into the host's blob cache by SFTP (beside it first, renamed once checked); bytes sent."""
    from mltrain.workspace.blobs import HashingReader

    assert remote.probe is not None
    blobs = f"{remote.probe['workdir']}/blobs"
    tmp = f"{blobs}/.up-{sha256}-{time.monotonic_ns()}"
    sftp = remote.sftp()
    # one upload at a time per host: paramiko's SFTP client garbles the stream (its server ends the
    # session) when several threads upload through it at once
    with remote.put_lock:
        try:
            with open(local, "rb") as f:
                reader = HashingReader(f)
                sftp.putfo(reader, tmp, confirm=True)
            try:
                reader.check(sha256, local)
            except WorkspaceError:
                sftp.remove(tmp)
                raise
            sftp.posix_rename(tmp, f"{blobs}/{sha256}")
        except (OSError, EOFError) as exc:
            remote.close()
            raise ConnectionLost(f"connection lost to {remote.label} while uploading: {exc}") from None
    return local.stat().st_size


def _receive_blobs(remote: Remote, chan: MuxChannel, files: list[tuple[Path, str]]) -> int:
    """:func:`put_blobs` on the helper's ``receive`` command ``chan``: the host stores each file only
    when its content matches its sha256."""
    from mltrain.workspace.blobs import HashingReader

    readers = []
    try:
        for local, sha256 in files:
            size = local.stat().st_size
            chan.sendall(json.dumps([f"blobs/{sha256}", size, sha256, None]).encode() + b"\n")
            with open(local, "rb") as f:
                reader, left = HashingReader(f), size
                while left and (chunk := reader.read(min(SEND_PIECE, left))):  # a file that grew: checked below
                    chan.sendall(chunk)
                    left -= len(chunk)
            readers.append((reader, local, sha256, size))
    except OSError as exc:
        chan.close()
        raise ConnectionLost(f"connection lost to {remote.label} while uploading: {exc}") from None
    code, _out, err = chan.communicate(b"", 600, None)
    for reader, local, sha256, _size in readers:
        reader.check(sha256, local)
    if code != 0:
        detail = err.decode(errors="replace").strip()[-300:]
        raise ComputeError(f"on {remote.label}, the upload of the run's files was refused: {detail}")
    return sum(size for *_r, size in readers)
