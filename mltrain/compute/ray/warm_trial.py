"""One trial forked by a warm Ray actor (:class:`WarmHandle`): followed by long polls, cancelled
through its actor, its outputs collected from the actor's archive or adopted from what its node posted
into the artifact root (:mod:`~mltrain.compute.ray.warm`)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mltrain.compute.archive import extract_outputs
from mltrain.compute.base import JobRef, OutputSink, RunHandle, RunSpec
from mltrain.compute.node_outputs import adopt_posted, discard_left
from mltrain.compute.ray.driver import call, send
from mltrain.compute.ray.stream import ArchiveFile, too_large
from mltrain.errors import ComputeError
from mltrain.text import fmt_bytes

if TYPE_CHECKING:
    from mltrain.compute.ray.warm_pool import Slot, WarmPool
    from mltrain.workspace.blobs import BlobStore

POLL_S = 1.0  # longest wait of one poll (it answers as soon as there is output or the trial ended)
UNAVAILABLE_S = 120.0  # longest an actor may stay unavailable (its node dying, a network blip) before it is lost


class WarmHandle(RunHandle):
    """A trial forked by a warm actor; a thread follows it with long polls. With ``pool`` (the driver
    that started it) the actor is released once the trial ended and its output was read. When the
    actor dies with its node and ``retries`` > 0, ``retry()`` runs the trial again as a Ray job
    (``inner``), which this handle then follows and passes calls to. ``direct``: the store and staging
    prefix its node uploads outputs/ and logs/ into itself (:func:`~mltrain.compute.node_outputs.signed_policy`)."""

    def __init__(
        self,
        spec: RunSpec,
        ref: JobRef,
        actor: Any,
        sink: OutputSink,
        pool: WarmPool | None = None,
        slot: Slot | None = None,
        grace_s: float = 5.0,
        retry: Callable[[], RunHandle] | None = None,
        retries: int = 0,
        max_output_mb: float = 1024.0,
        direct: tuple[BlobStore, str] | None = None,
        refused: str | None = None,
    ) -> None:
        super().__init__(spec)
        self.direct = direct
        self.refused = refused  # why the node's uploads are not adopted (a bad staging prefix in the reference)
        self._discarded = False  # what was left under the staging prefix was removed
        self.grace_s, self.max_output_mb = grace_s, max_output_mb
        self._ref = ref
        self.actor = actor
        self.sink = sink
        self.pool, self.slot = pool, slot
        self.run = str(ref["run"])
        self.outputs: dict[str, Any] | None = None
        self.problem: str | None = None
        self.inner: RunHandle | None = None
        self._retry, self._retries = retry, retries
        self._code: int | None = None
        self._done = threading.Event()
        self._metrics = bytearray()
        self._mlock = threading.Lock()
        self._stop_sent = False
        self._thread = threading.Thread(target=self._follow, name="mltrain-ray-warm", daemon=True)
        self._thread.start()

    @property
    def ref(self) -> JobRef:
        inner = self.inner
        return inner.ref if inner is not None else self._ref

    @property
    def attempt(self) -> int:  # type: ignore[override]
        inner = self.inner
        return inner.attempt if inner is not None else 1

    def _follow(self) -> None:
        code = self._follow_actor()
        if code is None:  # the actor died with its node: the trial runs again as a Ray job
            code = self._follow_retry()
        self._code = code
        self._done.set()

    def _follow_actor(self) -> int | None:
        """The trial's exit code as its actor tells it; None when the actor died and a retry is due."""
        offsets = [0, 0, 0]
        code: int | None = 1
        unavailable: float | None = None
        try:
            while True:
                try:
                    answer = call(self.actor.poll, self.run, offsets, POLL_S)
                except Exception as exc:  # noqa: BLE001 - unavailable: its node may be dying, or recover
                    now = time.monotonic()
                    unavailable = unavailable or now
                    if not _actor_unavailable(exc) or now - unavailable > UNAVAILABLE_S:
                        raise
                    time.sleep(1.0)  # polls are idempotent: ask again until Ray says it lives or died
                    continue
                unavailable = None
                if answer is None:
                    self.sink.write(
                        f"[mltrain] the warm Ray worker no longer knows run {self.run}\n".encode(), "stderr"
                    )
                    break
                out, err, metrics = answer["data"]
                if out:
                    self.sink.write(out, "stdout")
                if err:
                    self.sink.write(err, "stderr")
                if metrics:
                    with self._mlock:
                        self._metrics += metrics
                offsets = [o + len(d) for o, d in zip(offsets, answer["data"], strict=True)]
                if answer["exit"] is not None and answer["eof"]:
                    code = int(answer["exit"])
                    self.outputs = answer["outputs"]
                    break
        except Exception as exc:  # noqa: BLE001 - the actor (or its node) died, the cluster went away
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self.problem = f"the warm Ray worker running this run was lost: {first}"
            if self.pool is not None and self.slot is not None:
                self.pool.lost(self.slot)
            if _actor_died(exc) and self._retry is not None and self._retries > 0 and self.cancel_reason is None:
                self.sink.log(f"{self.problem}; retry 1 of {self._retries}, as a Ray job")
                code = None
            else:
                died = "died" if _actor_died(exc) else "was lost"
                retries = f"compute.max_retries={self._retries}"
                self.lost_reason = f"the warm Ray worker running this run {died} ({retries}): {first}"
                self.sink.write(f"[mltrain] {self.lost_reason}\n".encode(), "stderr")
                code = 1
        if self.pool is not None and self.slot is not None:
            self.pool.release(self.slot)
        return code

    def _follow_retry(self) -> int:
        assert self._retry is not None
        try:
            inner = self._retry()
        except Exception as exc:  # noqa: BLE001 - the job server refused the job: the run fails with why
            self.lost_reason = f"the retry of this run as a Ray job failed: {exc}"
            self.sink.write(f"[mltrain] {self.lost_reason}\n".encode(), "stderr")
            return 1
        with self._mlock:
            self.inner = inner
            reason = self.cancel_reason
        if reason is not None:  # canceled while the retry was submitted
            inner.cancel(reason)
        code = inner.wait(None)
        self.lost_reason = inner.lost_reason
        return 1 if code is None else code

    def wait(self, timeout: float | None) -> int | None:
        if not self._done.wait(timeout):
            return None
        return self._code

    def cancel(self, reason: str, force: bool = False) -> None:
        with self._mlock:
            self.cancel_reason = self.cancel_reason or reason
            inner = self.inner
        if inner is not None:
            inner.cancel(reason, force)
            return
        if self._done.is_set():
            return
        if force:
            send(self.actor.signal, self.run, int(signal.SIGKILL))
        elif not self._stop_sent:
            self._stop_sent = True
            send(self.actor.stop, self.run, self.grace_s, int(signal.SIGINT), False)

    def read_metrics(self, limit: int = 8 << 20) -> bytes:
        with self._mlock:
            data = bytes(self._metrics[:limit])
            del self._metrics[:limit]
            inner = self.inner
        if not data and inner is not None:
            return inner.read_metrics(limit)
        return data

    def collect(self) -> None:
        """Fetch the trial's outputs archive from its actor into the run folder (checked, then unpacked)
        and adopt what its node uploaded into the artifact root itself; a trial retried as a Ray job
        collects as that job does."""
        if self.inner is not None:
            try:
                self.inner.collect()
            finally:
                self.stored.update(self.inner.stored)
                self.received = self.inner.received
            return
        try:
            self._collect()
        finally:
            self._discard(self.sink.log)

    def _discard(self, say: Callable[[str], None]) -> None:
        """Remove whatever is left under the trial's staging prefix (uploads never announced or refused), once."""
        if not self._discarded:
            self._discarded = True
            discard_left(self.direct, say)

    def _collect(self) -> None:
        max_output_mb = self.max_output_mb
        self.wait(60)
        if self.problem and self.outputs is None:
            raise ComputeError(self.problem)
        outputs = self.outputs or {}
        for line in outputs.get("said") or []:
            self.sink.log(str(line))
        if outputs.get("error"):
            raise ComputeError(str(outputs["error"])[:2000])
        if outputs.get("stored") and self.direct is None:  # no store, or the record's prefix was refused
            why = self.refused or "this process cannot check them (it has no staging prefix of the run's)"
            self.sink.log(
                f"the node of warm Ray worker {self._ref['actor']} uploaded {len(outputs['stored'])} output files "
                f"into the artifact root, but {why}: all come through the worker"
            )
            try:
                outputs = call(self.actor.repack, self.run)
            except Exception as exc:  # noqa: BLE001 - the actor went away meanwhile
                raise ComputeError(f"cannot fetch the run's outputs from its warm Ray worker: {exc}") from None
        if "too_large" in outputs:
            raise ComputeError(too_large(int(outputs["too_large"]), f"{max_output_mb:g}"))
        if outputs.get("size"):
            self._fetch(outputs)
        if outputs.get("stored"):
            label = f"the node of warm Ray worker {self._ref['actor']}"
            rest = f"{fmt_bytes(self.received)} through the worker"
            say = self.sink.log
            self.stored.update(
                adopt_posted(self.direct, outputs["stored"], self.spec.run_dir, label, max_output_mb, say, rest)
            )

    def _fetch(self, outputs: dict[str, Any]) -> None:
        """The outputs archive ``outputs`` names, from the actor into the run folder (checked, then unpacked)."""
        max_output_mb = self.max_output_mb
        path = self.spec.run_dir / ".mltrain" / "ray-outputs-warm.tar.gz"
        archive = ArchiveFile(path)
        try:
            offset = 0
            while offset < int(outputs["size"]):
                piece = call(self.actor.archive, self.run, offset)
                if not piece:
                    break
                archive.write(piece)
                offset += len(piece)
            self.received = offset
            problem = archive.finish(str(outputs["sha256"]), int(outputs["size"]))
            if problem:
                raise ComputeError(problem)
            extract_outputs(path, self.spec.run_dir, max_output_mb)
        except ComputeError:
            raise
        except Exception as exc:  # noqa: BLE001 - the actor went away meanwhile
            raise ComputeError(f"cannot fetch the run's outputs from its warm Ray worker: {exc}") from None
        finally:
            archive.close()
            path.unlink(missing_ok=True)

    def cleanup(self) -> None:
        """The actor drops the trial's run folder and files (a retry's Ray job is deleted)."""
        try:
            call(self.actor.forget, self.run, timeout=30)
        except Exception:  # noqa: BLE001 - the actor is gone, and its files with it
            pass
        if self.inner is not None:
            self.inner.cleanup()
        self._discard(logging.getLogger("mltrain").warning)  # the run's output is closed by now


def _actor_unavailable(exc: BaseException) -> bool:
    try:
        from ray.exceptions import ActorUnavailableError
    except ImportError:
        return False
    return isinstance(exc, ActorUnavailableError)


def _actor_died(exc: BaseException) -> bool:
    try:
        from ray.exceptions import ActorDiedError
    except ImportError:
        return False
    return isinstance(exc, ActorDiedError)
