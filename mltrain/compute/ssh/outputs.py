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

from typing import TYPE_CHECKING

from mltrain.compute.node_outputs import adopt_uploads, checked_listing
from mltrain.compute.ssh.sync import URL_EXPIRES_S

if TYPE_CHECKING:
    from collections.abc import Callable

    from mltrain.compute.ssh.conn import Remote
    from mltrain.workspace.blobs import BlobStore


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
    staged = {}
    for rel in uploaded if isinstance(uploaded, list) else []:
        if rel in signed:
            _rel, sha, size, name, _url, _headers = signed[rel]
            staged[rel] = (sha, size, name)
    return adopt_uploads(blobs, staged, remote.label, say)
