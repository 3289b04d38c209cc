"""A run's outputs/ and logs/ written by its SSH host straight into an object-store artifact root.

The host lists its files with their sha256 and size (``outputs``); the driver checks the list as it
checks an outputs archive (plain paths under outputs/ or logs/, ``compute.max_output_mb``), hands the
host a signed PUT URL per file (to a staging name, short-lived, no credentials) and the host uploads
them itself (``put-outputs``). An upload becomes a blob only when the store computed its SHA-256 and
it is the announced one (:meth:`~mltrain.workspace.blobs.BlobStore.adopt`), so a host that lies about
a hash records nothing under it. What did not go (no route to the store, a refused URL, a wrong hash)
comes back in the ``pack`` archive as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mltrain.compute.archive import too_big
from mltrain.compute.ssh.sync import URL_EXPIRES_S
from mltrain.errors import ComputeError, MltrainError
from mltrain.remote.ssh_outputs import DIRECT_DIRS
from mltrain.workspace.blobs import is_sha256
from mltrain.workspace.paths import check_relpath

if TYPE_CHECKING:
    from collections.abc import Callable

    from mltrain.compute.ssh.conn import Remote
    from mltrain.workspace.blobs import BlobStore


class OutputsRefused(ComputeError):
    """The host's list of outputs is not acceptable: nothing of it is kept (not retried through the driver)."""


def checked_listing(answer: Any, label: str, max_output_mb: float) -> list[tuple[str, str, int]]:
    """The host's list of its output files, refused whole (ComputeError) when any entry is not a plain
    path under outputs/ or logs/ with a sha256 and a size, or they add up to more than the limit."""
    files: list[tuple[str, str, int]] = []
    for entry in answer if isinstance(answer, list) else [answer]:
        ok = isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
        try:
            ok = ok and check_relpath(entry[0]).split("/")[0] in DIRECT_DIRS and "\\" not in entry[0]
        except MltrainError:
            ok = False
        if not ok or not is_sha256(entry[1]) or not isinstance(entry[2], int) or entry[2] < 0:
            raise OutputsRefused(
                f"{label} listed an output {str(entry)[:200]!r} that is not a file under outputs/ or logs/",
                hint="its outputs were refused; check what runs on that machine",
            )
        files.append((entry[0], entry[1], entry[2]))
    if sum(size for _p, _s, size in files) > max_output_mb * 1024 * 1024:
        big = too_big(max_output_mb)
        raise OutputsRefused(big.message, hint=big.hint)
    return files


def upload_outputs(
    remote: Remote, run_id: str, blobs: BlobStore, max_output_mb: float, say: Callable[[str], None]
) -> dict[str, tuple[str, int]]:
    """Have ``remote`` upload the run's outputs/ and logs/ into ``blobs`` itself: {path: (sha256, size)}
    of those now stored, checked by the store. Empty when the store cannot sign uploads."""
    files = checked_listing(remote.agent("outputs", run_id), remote.label, max_output_mb)
    signed: dict[str, tuple[str, str, int, str, str, dict[str, str]]] = {}
    for rel, sha, size in files:
        got = blobs.signed_put(sha, URL_EXPIRES_S)
        if got is None:
            return {}
        signed[rel] = (rel, sha, size, *got)
    request = {"files": [[rel, url, headers] for rel, _sha, _size, _staged, url, headers in signed.values()]}
    uploaded = remote.agent("put-outputs", run_id, request=request, timeout=600)["uploaded"] if signed else []
    stored: dict[str, tuple[str, int]] = {}
    for rel in uploaded if isinstance(uploaded, list) else []:
        if rel not in signed or rel in stored:
            continue
        _rel, sha, size, staged, _url, _headers = signed[rel]
        try:
            if not blobs.adopt(staged, sha):
                say(f"warning: {remote.label} uploaded {rel} with another content than its sha256 {sha}: refused")
                continue
        except MltrainError as exc:  # the store failed: the file comes through the driver
            say(f"warning: {rel} uploaded by {remote.label} could not be checked in {blobs.url}: {exc.message}")
            continue
        stored[rel] = (sha, size)
    return stored
