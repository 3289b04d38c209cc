"""A run's inputs on an SSH host, through the host's content-addressed cache (the one snapshots use:
``WORKDIR/blobs/<sha256>``, and ``WORKDIR/refs/<id>`` for files of references).

The host says which cache keys it lacks (one round trip); a file of an object store the host fetches
itself by a signed URL (checked against its size, hash or ETag); the others travel, streamed from the
input's source (a datastore, through the driver) one after another in one stream of the helper's
``receive`` over the host's link, as a snapshot's files do (:func:`~mltrain.compute.ssh.sync.send_files`:
each checked against its size and hash before it takes its name there); then the
host lays the inputs out in the run folder (:func:`mltrain.remote.inputs.materialise`, the same code
as on this machine). A second run of the
same data moves 0 bytes. After the run, mounted files a script changed are reported (the host's
cache drops or repairs them); the run folder, inputs included, goes with the run's cleanup.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, BinaryIO

from mltrain.compute.delivery import Delivered, Moved, by_key, describe, read_source
from mltrain.compute.ssh.sync import Outgoing, fetch_on_host, send_files
from mltrain.errors import ComputeError
from mltrain.remote import inputs as node_io

if TYPE_CHECKING:
    from mltrain.compute.base import RunSpec
    from mltrain.compute.data_io import InputFile, InputSpec
    from mltrain.compute.ssh.conn import Remote
    from mltrain.environments.base import LogFn


class SSHDelivery(Delivered):
    """Inputs laid out in a run folder on an SSH host."""

    def __init__(self, remote: Remote, manifests: list[dict[str, Any]], moved: Moved) -> None:
        super().__init__(moved)
        self.remote, self.manifests = remote, manifests

    def check(self) -> list[str]:
        if not any(m["mode"] == node_io.MOUNT for m in self.manifests):
            return []
        try:
            changed = self.remote.agent("inputs-changed", request={"inputs": self.manifests})["changed"]
        except ComputeError as exc:
            return [f"could not check the mounted inputs on {self.remote.label}: {exc}"]
        return [node_io.mount_problem(changed, self.remote.label)] if changed else []


def _send(remote: Remote, files: list[tuple[InputSpec, InputFile]]) -> int:
    """Send ``files`` into the host's cache, each read from its input's source (:func:`send_files`: a
    file whose source gives another size than recorded is refused, ComputeError); bytes sent."""

    def opener(inp: InputSpec, f: InputFile) -> Callable[[ExitStack], BinaryIO]:
        return lambda stack: read_source(inp, f, stack)

    return send_files(remote, [Outgoing(f.entry, opener(inp, f), f"input {inp.name}: {f.relpath} at {inp.uri}")
                               for inp, f in files])  # fmt: skip


def _fetch_there(remote: Remote, files: list[tuple[InputSpec, InputFile]]) -> set[str]:
    """The cache keys of ``files`` the host fetched from their store itself (signed URLs of an object store:
    no credentials on the host), so they need not pass through the driver."""
    hints = [(f.entry, hint) for inp, f in files if inp.source is not None and (hint := inp.source.node_hint(f))]
    return fetch_on_host(remote, hints)


def deliver_ssh(remote: Remote, spec: RunSpec, log: LogFn) -> SSHDelivery:
    """The inputs of ``spec`` in its run folder on ``remote`` (made by ``upload``), sending only the
    files the host's cache lacks, and the outputs' folders made there."""
    manifests = spec.manifests()
    request = {"inputs": manifests, "outputs": [o.name for o in spec.outputs]}
    missing = set(remote.agent("inputs", spec.run_id, request=request)["missing"])
    total = Moved()
    for inp in spec.inputs:
        moved = Moved()
        wanted = [(inp, f) for key, f in by_key(inp).items() if key in missing]
        missing -= {f.key for _i, f in wanted}
        fetched = _fetch_there(remote, wanted)
        sent = [(i, f) for i, f in wanted if f.key not in fetched]
        moved.bytes = (_send(remote, sent) if sent else 0) + sum(f.size for _i, f in wanted if f.key in fetched)
        moved.files = len(wanted)
        if inp.mode != node_io.DIRECT:
            moved.cached = len(by_key(inp)) - len(wanted)
        log(describe(inp, moved, remote.label))
        if fetched:
            log(f"input {inp.name}: {len(fetched)} of those files fetched by {remote.label} from their store itself")
        total.add(moved)
    if total.files and remote.agent("inputs", spec.run_id, request=request)["missing"]:
        raise ComputeError(f"the inputs of run {spec.run_id} did not all reach {remote.label}")
    return SSHDelivery(remote, manifests, total)
