"""Files moved a few at a time: an object store's latency is hidden and a second core hashes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from mltrain.data.progress import Progress

T = TypeVar("T")
R = TypeVar("R")

WORKERS = 4  # files at once; each adds about 13 MB to the peak RSS (its buffers)


def run_all(work: Callable[[T], R], items: Sequence[T], progress: Progress) -> list[R]:
    """``work`` of every item, in order. The first failure (or Ctrl-C) stops the others at their next
    chunk (through ``progress``), and is raised once they have cleaned up."""
    with ThreadPoolExecutor(max(1, min(WORKERS, len(items)))) as pool:
        futures = [pool.submit(work, item) for item in items]
        try:
            return [future.result() for future in futures]
        except BaseException:
            progress.cancel()
            for future in futures:
                future.cancel()
            raise
