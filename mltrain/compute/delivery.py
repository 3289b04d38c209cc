"""Delivering a run's inputs on this machine (local and Docker compute): a node cache keyed by content
(:class:`mltrain.remote.inputs.NodeCache` under ``$MLTRAIN_CACHE_DIR/data/``: ``blobs/``, ``refs/``), filled from
the inputs' sources only with what it lacks (a second run of the same data moves 0 bytes), then laid
out in the run folder (``mount``: read-only hard links, ``download``: private copies).

After the run, a mounted file whose cached copy changed (a script that wrote through it) is reported
and the cache repaired (:meth:`LocalDelivery.check`); ``release`` removes the laid-out inputs from the
run folder (the cache stays).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mltrain.errors import ComputeError
from mltrain.remote import inputs as node_io
from mltrain.text import fmt_bytes

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mltrain.compute.data_io import InputFile, InputSpec, OutputSpec

WORKERS = 4  # files fetched at once (an object store's latency hidden, a second core hashing)
LogFn = Callable[[str], None]


@dataclass
class Moved:
    """Bytes and files an input's delivery fetched into a cache, and those the cache had already."""

    bytes: int = 0
    files: int = 0
    cached: int = 0

    def add(self, other: Moved) -> None:
        self.bytes += other.bytes
        self.files += other.files
        self.cached += other.cached


def describe(inp: InputSpec, moved: Moved, where: str) -> str:
    """The log line of an input's delivery."""
    if inp.mode == node_io.DIRECT:
        return f"input {inp.name}: {inp.uri} (direct: the script reads it there)"
    count = len(inp.files)
    head = f"input {inp.name}: {inp.uri}, {count} file{'s' if count != 1 else ''}, {fmt_bytes(inp.size)}, {inp.mode}"
    if not moved.files:
        return f"{head}; 0 bytes moved (all in {where}'s cache)"
    there = f"{moved.files} files, {moved.cached} there already"
    return f"{head}; {fmt_bytes(moved.bytes)} moved into {where}'s cache ({there})"


def by_key(inp: InputSpec) -> dict[str, InputFile]:
    """One file of ``inp`` per cache key (identical files are fetched once)."""
    return {f.key: f for f in inp.files}


def read_source(inp: InputSpec, f: InputFile, stack: ExitStack) -> BinaryIO:
    """The bytes of ``f`` as the driver reads them: a local file when the source has one, else its store."""
    if inp.source is None:
        raise ComputeError(f"input {inp.name} has no source to read {f.relpath} from")
    local = inp.source.local_path(f)
    if local is not None:
        try:
            return stack.enter_context(open(local, "rb"))
        except OSError:
            pass  # gone meanwhile: read through the store (which names the problem)
    return stack.enter_context(inp.source.open(f))


def fetch(cache: node_io.NodeCache, inp: InputSpec) -> Moved:
    """Fill ``cache`` with the files of ``inp`` it lacks, from the input's source (a few at a time)."""
    wanted = by_key(inp)
    missing = cache.missing([f.entry for f in wanted.values()])
    moved = Moved(cached=len(wanted) - len(missing))
    lock = threading.Lock()

    def one(key: str) -> None:
        f = wanted[key]
        with ExitStack() as stack:
            try:
                size = cache.store(f.entry, read_source(inp, f, stack))
            except node_io.InputError as exc:
                raise ComputeError(
                    f"input {inp.name} ({inp.uri}): {exc}",
                    hint="the data changed at its source or its stored copy is damaged; nothing was cached",
                ) from None
        with lock:
            moved.bytes += size
            moved.files += 1

    if missing:
        with ThreadPoolExecutor(min(WORKERS, len(missing))) as pool:
            list(pool.map(one, missing))
    return moved


class Delivered:
    """What a target's ``deliver`` did for one run: bytes it moved, what to check after the run
    (:meth:`check`: problems to record) and what to release at cleanup."""

    def __init__(self, moved: Moved | None = None) -> None:
        self.moved = moved or Moved()

    def check(self) -> list[str]:
        """After the run: what went wrong with its inputs (e.g. a mount the script changed)."""
        return []

    def release(self) -> None:
        """Remove what the delivery laid out for this run (never the cache)."""


class LocalDelivery(Delivered):
    """Inputs laid out in a run folder on this machine from its node cache."""

    def __init__(self, manifests: list[dict[str, Any]], run_dir: str, cache: node_io.NodeCache, moved: Moved) -> None:
        super().__init__(moved)
        self.manifests, self.run_dir, self.cache = manifests, run_dir, cache

    def check(self) -> list[str]:
        changed = node_io.changed_mounts(self.cache, self.manifests)
        return [node_io.mount_problem(changed, "this machine")] if changed else []

    def release(self) -> None:
        node_io.release_run_folder(self.run_dir, self.cache, remove=False)


def deliver_here(
    inputs: Sequence[InputSpec],
    outputs: Sequence[OutputSpec],
    run_dir: Path,
    log: LogFn,
    bound_read_only: bool = False,
) -> LocalDelivery:
    """``inputs`` laid out in ``run_dir`` from this machine's node cache, and the outputs' folders made.
    ``bound_read_only``: the job sees mounted inputs through a read-only bind (a container)."""
    cache = node_io.node_cache()
    folder = str(run_dir)
    total = Moved()
    for inp in inputs:
        moved = Moved() if inp.mode == node_io.DIRECT else fetch(cache, inp)
        try:
            node_io.materialise(cache, inp.manifest(), folder, bound_read_only)
        except node_io.InputError as exc:
            raise ComputeError(f"cannot lay out input {inp.name}: {exc}") from None
        log(describe(inp, moved, "this machine"))
        total.add(moved)
    try:
        node_io.prepare_outputs(folder, [o.name for o in outputs])
    except node_io.InputError as exc:
        raise ComputeError(f"cannot make the outputs' folders: {exc}") from None
    return LocalDelivery([i.manifest() for i in inputs], folder, cache, total)
