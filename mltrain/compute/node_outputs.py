"""A run's outputs/ and logs/ that its node uploaded into an object-store artifact root itself, on the
driver's side (an SSH host: :mod:`~mltrain.compute.ssh.outputs`; a Ray node: :mod:`~mltrain.compute.ray.jobs`).

The node's list of its files is checked as an outputs archive is (plain paths under outputs/ or logs/,
``compute.max_output_mb``), and an upload becomes a blob only when the store computed its SHA-256 and
it is the announced one (:meth:`~mltrain.workspace.blobs.BlobStore.adopt`), so a node that lies about
a hash records nothing under it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mltrain.compute.archive import too_big
from mltrain.errors import ComputeError, MltrainError
from mltrain.remote.node_outputs import DIRECT_DIRS
from mltrain.text import fmt_bytes
from mltrain.workspace.blobs import is_sha256
from mltrain.workspace.paths import check_relpath

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from mltrain.compute.base import RunSpec
    from mltrain.workspace.blobs import BlobStore


def node_writes_outputs(blobs: BlobStore, spec: RunSpec) -> bool:
    """Whether the node of ``spec`` may upload its outputs/ and logs/ into ``blobs`` itself: the store signs
    uploads and every named output is stored there (the others are made from the local run folder)."""
    return blobs.signs_puts and all(o.in_workspace for o in spec.outputs)


class OutputsRefused(ComputeError):
    """The node's list of outputs is not acceptable: nothing of it is kept (not retried through the driver)."""


def checked_listing(answer: Any, label: str, max_output_mb: float) -> list[tuple[str, str, int]]:
    """The node's list of its output files, refused whole (ComputeError) when any entry is not a plain
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


def adopt_uploads(
    blobs: BlobStore, staged: dict[str, tuple[str, int, str]], label: str, say: Callable[[str], None]
) -> dict[str, tuple[str, int]]:
    """The uploads ``staged`` ({path: (sha256, size, staged name)}) made blobs, each checked by the store:
    {path: (sha256, size)} of those it took; one whose content is not its sha256 is refused (and said)."""
    stored: dict[str, tuple[str, int]] = {}
    for rel, (sha, size, name) in staged.items():
        try:
            if not blobs.adopt(name, sha):
                say(f"warning: {label} uploaded {rel} with another content than its sha256 {sha}: refused")
                continue
        except MltrainError as exc:
            say(f"warning: {rel} uploaded by {label} could not be checked in {blobs.url}: {exc.message}")
            continue
        stored[rel] = (sha, size)
    return stored


def adopt_announced(
    blobs: BlobStore, prefix: str, announced: list[Any], label: str, max_output_mb: float, say: Callable[[str], None]
) -> dict[str, tuple[str, int]]:
    """The files a node announced it posted by a policy of :meth:`~mltrain.workspace.blobs.BlobStore.signed_post`
    (``[path, sha256, size, N]`` each, N its number under staging ``prefix``) made blobs, each checked by
    the store (:func:`adopt_uploads`); the whole list is refused (:class:`OutputsRefused`) when an entry is
    not a plain output file with a number of its own, or they add up to more than ``max_output_mb``."""
    numbers = [e[3] if isinstance(e, list) and len(e) == 4 else None for e in announced]
    if not all(type(n) is int and n >= 0 for n in numbers) or len(set(numbers)) != len(numbers):
        raise OutputsRefused(
            f"{label} announced uploads {str(announced)[:200]!r} that are not numbered files of its policy",
            hint="its outputs were refused; check what runs on that machine",
        )
    files = checked_listing([e[:3] for e in announced], label, max_output_mb)
    staged = {rel: (sha, size, f"{prefix}{n}") for (rel, sha, size), n in zip(files, numbers, strict=True)}
    return adopt_uploads(blobs, staged, label, say)


def as_stored(run_dir: Path, sent: dict[str, tuple[str, int]]) -> dict[str, tuple[str, int]]:
    """The run's artifacts of the uploads ``sent``: a file of logs/ the driver has too gets ``.node``, as
    in an archive (:attr:`~mltrain.compute.base.RunHandle.stored`)."""
    return {
        (f"{rel}.node" if rel.startswith("logs/") and (run_dir / rel).exists() else rel): b for rel, b in sent.items()
    }


def signed_policy(
    blobs: BlobStore | None, run_id: str, max_output_mb: float, expires_s: int
) -> tuple[tuple[BlobStore, str], dict[str, Any]] | None:
    """(``blobs`` and the staging prefix, the presigned POST policy ``{url, fields, key}``, valid ``expires_s``)
    by which the node of run ``run_id`` uploads its outputs/ and logs/ itself
    (:func:`~mltrain.remote.node_outputs.post_outputs`, ``max_output_mb`` per file); None when there is no
    store or it signs none. The policy is a bearer capability: never record it (the prefix may be)."""
    if blobs is None:
        return None
    try:
        signed = blobs.signed_post(run_id, expires_s, int(max_output_mb * 1024 * 1024))
    except MltrainError:
        return None
    if signed is None:
        return None
    staged, url, fields, key = signed
    return (blobs, staged), {"url": url, "fields": fields, "key": key}


def adopt_posted(
    direct: tuple[BlobStore, str] | None,
    announced: list[Any],
    run_dir: Path,
    label: str,
    max_output_mb: float,
    say: Callable[[str], None],
    rest: str,
) -> dict[str, tuple[str, int]]:
    """The run's artifacts (:attr:`~mltrain.compute.base.RunHandle.stored`) of the files ``label`` (a node)
    announced it posted by the policy of :func:`signed_policy` (``direct``: the store and staging prefix),
    each checked (:func:`adopt_announced`), said with ``rest`` (what came through the driver). ComputeError
    when this process did not sign that policy (``direct`` None), so it cannot check them."""
    if direct is None:
        raise ComputeError(
            f"{label} uploaded {len(announced)} output files into the artifact root's staging prefix, but "
            "this process neither started the run nor was given the workspace's blob store, so it cannot check "
            "and record them",
            hint="run the job again from one process to the end",
        )
    blobs, prefix = direct
    sent = adopt_announced(blobs, prefix, announced, label, max_output_mb, say)
    say(
        f"outputs: {len(sent)} files ({fmt_bytes(sum(size for _sha, size in sent.values()))}) uploaded by "
        f"{label} into {blobs.url} itself, {rest}"
    )
    return as_stored(run_dir, sent)
