"""A run's inputs on a Ray cluster: each node fetches a file from its datastore when it can reach it
(an object store, by a short-lived signed URL), otherwise the file is carried with the job: copied
into the staged snapshot (``.mltrain/carried/``, a cache keyed by content), which Ray ships to each
node once. On the node, :func:`mltrain.remote.inputs.deliver_on_node` fills the node's own cache
from there (a second run of the same data moves 0 bytes) and lays the inputs out in the run folder.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.compute.delivery import Moved, by_key, read_source
from mltrain.errors import ComputeError
from mltrain.remote import inputs as node_io
from mltrain.text import fmt_bytes

if TYPE_CHECKING:
    from mltrain.compute.base import RunSpec
    from mltrain.environments.base import LogFn


def carry_inputs(spec: RunSpec, folder: Path, log: LogFn, fetch: bool = True) -> Moved:
    """Into the staged ``folder``: the manifests of ``spec``'s inputs, the signed URLs nodes fetch by,
    and a copy of every file no node can fetch itself (every file, without ``fetch``: a node could not
    reach the store); what was copied."""
    carried = node_io.NodeCache(str(folder / node_io.CARRIED_DIR))
    hints: dict[str, dict[str, Any]] = {}
    total = Moved()
    for inp in spec.inputs:
        try:
            node_io.check_paths(inp.manifest())
        except node_io.InputError as exc:
            raise ComputeError(f"input {inp.name} ({inp.uri}): {exc}") from None
        if inp.mode == node_io.DIRECT:
            continue
        moved = Moved()
        for key, f in by_key(inp).items():
            hint = inp.source.node_hint(f) if inp.source is not None and fetch else None
            if hint is not None and "url" in hint:
                hints[key] = hint
                continue
            with ExitStack() as stack:
                try:
                    carried.store(f.entry, read_source(inp, f, stack))
                except node_io.InputError as exc:
                    raise ComputeError(f"input {inp.name} ({inp.uri}): {exc}") from None
            moved.bytes += f.size
            moved.files += 1
        fetched = len(by_key(inp)) - moved.files
        log(
            f"input {inp.name}: {inp.uri}, {fmt_bytes(moved.bytes)} carried with the job to the cluster's nodes "
            f"({moved.files} files), {fetched} fetched by the nodes from its datastore"
        )
        total.add(moved)
    node_io.write_manifests(str(folder), spec.manifests(), [o.name for o in spec.outputs], hints)
    return total
