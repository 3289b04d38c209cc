"""Runs as Ray jobs, submitted through Ray's Job Submission API: :class:`RayJobs` (the executor) and
:class:`ClusterHandle` (one run across its attempts).

The job's runtime_env is the run's environment (the lock as ``pip``/``uv`` packages, installed and
cached by each node) plus the snapshot as ``working_dir`` and the in-script API and the job wrapper
(:mod:`mltrain.remote.ray_job`) as ``py_modules`` (:mod:`~mltrain.compute.ray.runtime`). Ray places
the job on any node with the resources asked for (the entrypoint's, so Ray's resource accounting
queues runs when the cluster is full). The wrapper streams the script's output and metrics through
the job's log and sends outputs/ and logs/ back the same way when the script ends, so they return
whichever node ran it (:mod:`~mltrain.compute.ray.stream`). With an object-store artifact root the node
uploads outputs/ and logs/ into it itself instead, by a presigned POST policy limited to a staging
prefix of the run and ``compute.max_output_mb`` per file (:attr:`RayJobs.direct`); the driver makes
each announced upload a blob only when the store computes its announced SHA-256
(:mod:`~mltrain.compute.node_outputs`), and what could not go comes through the log as before.

A run's reference is ``{"kind": "ray", "address", "api", "job", "mark"}``: the job server and the
submission id stem; attempt N of the run is the Ray job ``<job>-N``; with ``"staging"``, the staging
prefix of the node's uploads (never the policy itself), so another process that attaches to the job
(recovery) adopts them too, once it checked that the prefix is one of this run's. Whatever is left under
the prefix when the run ended (uploads never announced, a failed run's) is removed. A job whose node
died (its supervisor actor died) is submitted again, up to ``max_retries`` times.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from mltrain.compute.archive import extract_outputs
from mltrain.compute.base import JobRef, OutputSink, RunHandle, RunSpec, node_label
from mltrain.compute.node_outputs import signed_policy
from mltrain.compute.ray.connection import TERMINAL, RayConnection, status_of
from mltrain.compute.ray.ending import STOP_MARGIN_S, delete_jobs, stop_attempts
from mltrain.compute.ray.runtime import Stage, resources, resources_text, runtime_env
from mltrain.compute.ray.stream import JobStream
from mltrain.errors import ComputeError, MltrainError
from mltrain.remote.ray_job import GRACE_ENV, MARK_ENV, MAX_OUTPUT_ENV, OUTPUTS_POST_ENV, entrypoint
from mltrain.text import fmt_bytes

if TYPE_CHECKING:
    from collections.abc import Callable

    from ray.job_submission import JobSubmissionClient

    from mltrain.environments.base import Materialised
    from mltrain.workspace.blobs import BlobStore


NODE_DIED = ("JOB_SUPERVISOR_ACTOR_DIED",)  # Ray's error_type when the job's node (or supervisor) died
STATUS_POLL_S = 0.25  # how often a followed job's status is asked while it is young (then every second)
STATUS_FAST_FOR_S = 60


def _node_died(info: Any) -> bool:
    """Ray's verdict that the job's supervisor (with its node) died, not that the script failed."""
    error_type = getattr(info, "error_type", None)
    error_type = str(getattr(error_type, "value", error_type) or "")
    message = str(getattr(info, "message", "") or "")
    return any(e in error_type for e in NODE_DIED) or message.startswith("Job supervisor actor died")


class ClusterHandle(RunHandle):
    """One run on the cluster (reached through ``conn``), across its attempts; a thread follows the
    current attempt's log. ``submit`` holds the submit_job arguments (None: attached, never resubmitted)."""

    def __init__(
        self,
        spec: RunSpec,
        conn: RayConnection,
        job: str,
        mark: str,
        sink: OutputSink,
        attempt: int,
        submit: dict[str, Any] | None,
        direct: tuple[BlobStore, str] | None = None,
        carry: Callable[[], dict[str, Any]] | None = None,
        refused: str | None = None,
    ) -> None:
        super().__init__(spec)
        self.refused = refused  # why the node's uploads are not adopted (a bad staging prefix in the reference)
        self._discarded = False  # what was left under the staging prefix was removed
        self._carry = carry  # the submit_job arguments with the snapshot carried (its node could not fetch it)
        self.direct = direct  # the store the node uploads outputs/ and logs/ into itself, and their staging prefix
        self.conn = conn
        self.job = job
        self.mark = mark
        self.sink = sink
        self.attempt = attempt
        self._submit = submit
        self._code: int | None = None
        self._done = threading.Event()
        self._stop_requested = False
        self._timed_out = False
        self._lock = threading.Lock()
        self.node: dict[str, str] = {}  # where the current attempt runs, once Ray placed it
        self.stream = self._new_stream()
        self.streams: list[JobStream] = [self.stream]
        self._thread = threading.Thread(target=self._follow, name="mltrain-ray-follow", daemon=True)
        self._thread.start()

    @property
    def sid(self) -> str:
        return f"{self.job}-{self.attempt}"

    @property
    def ref(self) -> JobRef:
        return {
            "kind": "ray",
            "address": self.conn.config.address,
            "api": self.conn.api,
            "job": self.job,
            "mark": self.mark,
            **({"staging": self.direct[1]} if self.direct is not None else {}),
            **self.node,
        }

    def _placed(self, info: Any) -> bool:
        """Note the node Ray placed the current attempt on (from its job info); False when not yet."""
        ip = str(getattr(info, "driver_agent_http_address", "") or "").split("://")[-1].rsplit(":", 1)[0]
        node_id = str(getattr(info, "driver_node_id", "") or "")
        if not ip and not node_id:
            return False
        self.node = {"node": node_label(ip or "?", node_id), "node_ip": ip, "node_id": node_id}
        return True

    def _new_stream(self) -> JobStream:
        archive = self.spec.run_dir / ".mltrain" / f"ray-outputs-{self.attempt}.tar.gz"
        return JobStream(self.mark, self.sink, archive)

    # -- following ------------------------------------------------------------------------------
    def _follow(self) -> None:
        code = 1
        try:
            while True:
                info = self._follow_attempt()
                if self._carried():
                    continue
                if self.stream.exit_code is not None:
                    code = self.stream.exit_code
                    break
                if self._stop_requested:
                    code = 1 if self._timed_out else -15
                    break
                if self._retry(info):
                    continue
                code = self._failed(info)
                break
        except Exception as exc:  # noqa: BLE001 - the cluster went away: the run fails, it does not hang
            self.lost_reason = f"lost the Ray job {self.sid}: {exc}"
            self.sink.write(f"[mltrain] {self.lost_reason}\n".encode(), "stderr")
            code = 1
        self._code = code
        self._done.set()

    def _follow_attempt(self) -> Any:
        client = self.conn.client
        sid = self.sid
        watcher = threading.Thread(target=self._watch_start, args=(sid,), daemon=True)
        watcher.start()
        for _ in range(1000):
            try:
                asyncio.run(self._tail(client, sid))
            except Exception:  # noqa: BLE001 - the stream broke (node died, server restarted)
                pass
            if self.stream.exit_code is not None:  # the wrapper's last line: the job has nothing more to say
                self.stream.close()
                return None
            info = self._info(sid)
            if info is None or status_of(info) in TERMINAL:
                break
            time.sleep(1)
            self.stream.replay()
        if not self.node and info is not None:
            self._placed(info)  # a job that ended before the start watcher saw it run
        for _ in range(5 if info is not None else 0):
            if self.stream.exit_code is not None:
                break
            # the tail ended before the last lines (the job ended between two reads, the stream broke):
            # read the whole log (again, a little later, while the node's agent catches up)
            try:
                logs = client.get_job_logs(sid)
            except Exception:  # noqa: BLE001 - logs gone with the node
                break
            self.stream.replay()
            self.stream.feed(logs)
            if self.stream.exit_code is None:
                time.sleep(2)
        self.stream.close()
        return info

    async def _tail(self, client: JobSubmissionClient, sid: str) -> None:
        """Follow the job's log until the wrapper's exit code (its last line, after the outputs) or until
        Ray reports the job ended: Ray's log stream lags the job by seconds (it ends some seconds after
        the job did), so its status is polled alongside and the caller reads the rest of the log at once."""

        async def follow() -> None:
            async for chunk in client.tail_job_logs(sid):
                self.stream.feed(chunk)
                if self.stream.exit_code is not None:
                    return

        loop = asyncio.get_running_loop()
        tail = asyncio.ensure_future(follow())
        started = time.monotonic()
        while not tail.done():
            fast = time.monotonic() - started < STATUS_FAST_FOR_S
            await asyncio.wait({tail}, timeout=STATUS_POLL_S if fast else 1.0)
            if tail.done():
                break
            try:
                status = status_of(await loop.run_in_executor(None, client.get_job_info, sid))
            except Exception:  # noqa: BLE001 - the tail decides
                continue
            if status in TERMINAL:
                tail.cancel()
                try:
                    await tail
                except asyncio.CancelledError:
                    pass
                return
        tail.result()

    def _info(self, sid: str) -> Any:
        for _ in range(5):
            try:
                return self.conn.client.get_job_info(sid)
            except Exception as exc:  # noqa: BLE001
                if "does not exist" in str(exc) or "404" in str(exc):
                    return None
                time.sleep(1)
        return None

    def _watch_start(self, sid: str) -> None:
        """Report the node the job runs on; stop a job that stays pending past start_timeout_s."""
        limit = self.conn.config.start_timeout_s
        started = time.monotonic()
        while not self._done.is_set() and sid == self.sid:
            info = self._info(sid)
            status = status_of(info)
            if status == "RUNNING":
                self._placed(info)
                self.sink.log(f"Ray job {sid} runs on node {self.node.get('node') or '?'}")
                return
            if not status or status in TERMINAL:
                return
            if limit is not None and time.monotonic() - started > limit:
                self.sink.write(
                    f"[mltrain] no node of the cluster could start Ray job {sid} within compute.start_timeout_s="
                    f"{limit:g} s (resources asked: {resources_text(self.conn.config)})\n".encode(),
                    "stderr",
                )
                self._timed_out = self._stop_requested = True
                self.conn.stop_job(sid)
                return
            time.sleep(1)

    def _carried(self) -> bool:
        """Submit the next attempt with the snapshot carried when the node of this one could not fetch it
        from the artifact root itself."""
        if self.stream.unreachable is None or self._carry is None:
            return False
        self.sink.log(
            f"the node of Ray job {self.sid} could not fetch the snapshot from the artifact root itself "
            f"({self.stream.unreachable}): it is carried with the job"
        )
        carry, self._carry = self._carry, None
        return self._resubmit(carry)

    def _retry(self, info: Any) -> bool:
        """Submit the next attempt when the node of this one died and retries are left."""
        if self._submit is None or info is None or status_of(info) != "FAILED":
            return False
        if not _node_died(info):
            return False
        retries = self.conn.config.max_retries
        if self.attempt > retries:
            return False
        message = str(getattr(info, "message", "") or "").strip().splitlines()
        self.sink.log(
            f"Ray job {self.sid} was lost with its node ({message[0] if message else 'its supervisor died'}); "
            f"retry {self.attempt} of {retries}"
        )
        return self._resubmit()

    def _resubmit(self, args: Callable[[], dict[str, Any]] | None = None) -> bool:
        """Submit the next attempt (with the arguments ``args`` makes, default the same); False when stopped."""
        with self._lock:
            if self._stop_requested or self._submit is None:
                return False
            if args is not None:
                self._submit = args()
            self.attempt += 1
            self.node = {}
            self.stream = self._new_stream()
            self.streams.append(self.stream)
            self.conn.submit(self.sid, self._submit)
        return True

    def _failed(self, info: Any) -> int:
        status = status_of(info)
        message = str(getattr(info, "message", "") or "").strip()
        if _node_died(info):
            retries = self.conn.config.max_retries
            what = f"the node running Ray job {self.sid} died"
            tried = f"after {self.attempt - 1} retr{'y' if self.attempt == 2 else 'ies'}" if self.attempt > 1 else ""
            reason = f"{what} {tried} (compute.max_retries={retries}): {message.splitlines()[0] if message else ''}"
        elif status == "FAILED":
            first = message.splitlines()[0] if message else "no reason given"
            reason = f"Ray job {self.sid} failed before its script ended: {first}"
        else:
            reason = f"Ray job {self.sid} ended ({status or 'gone'}) without an exit code"
        self.sink.write(f"[mltrain] {reason}\n".encode(), "stderr")
        self.lost_reason = reason  # the wrapper never sent the script's exit code: there is none to record
        return 1

    # -- the RunHandle contract ------------------------------------------------------------------
    def wait(self, timeout: float | None) -> int | None:
        if not self._done.wait(timeout):
            return None
        return self._code

    def cancel(self, reason: str, force: bool = False) -> None:
        self.cancel_reason = self.cancel_reason or reason
        with self._lock:
            if self._stop_requested or self._done.is_set():
                return
            self._stop_requested = True
            sid = self.sid
        threading.Thread(target=self._stop, args=(sid,), name="mltrain-ray-stop", daemon=True).start()

    def _stop(self, sid: str) -> None:
        """Ask Ray to stop ``sid`` until it takes the request or the job ended (a job just submitted may
        have no supervisor yet to take it)."""
        while not self.conn.stop_job(sid) and not self._done.wait(1.0):
            pass

    def read_metrics(self, limit: int = 8 << 20) -> bytes:
        return self.stream.read_metrics(limit)

    # -- what the job left -----------------------------------------------------------------------
    def collect(self) -> None:
        """Unpack the outputs archive the job sent through its log into the run folder."""
        self.wait(60)
        stream = self.stream
        if stream.archive_ok:
            self.received = stream.archive_path.stat().st_size
            try:
                extract_outputs(stream.archive_path, self.spec.run_dir, self.conn.config.max_output_mb)
            finally:
                stream.archive_path.unlink(missing_ok=True)
        elif stream.problem:
            raise ComputeError(stream.problem)
        for old in self.streams:
            old.archive_path.unlink(missing_ok=True)
        if self.refused is not None:
            raise ComputeError(self.refused, hint="the run's record was changed: its job's uploads stay where they are")
        try:
            if stream.stored:
                self._adopt(stream.stored)
        finally:
            self._discard(self.sink.log)

    def _adopt(self, announced: list[Any]) -> None:
        """The files the node says it uploaded made blobs of the run (:attr:`stored`), each checked."""
        from mltrain.compute.node_outputs import adopt_posted

        label, rest = f"the node of Ray job {self.sid}", f"{fmt_bytes(self.received)} through its log"
        cfg = self.conn.config
        self.stored.update(
            adopt_posted(self.direct, announced, self.spec.run_dir, label, cfg.max_output_mb, self.sink.log, rest)
        )

    def _discard(self, say: Callable[[str], None]) -> None:
        """Remove whatever is left under the run's staging prefix (uploads never announced or refused), once."""
        if self.direct is None or self._discarded:
            return
        self._discarded = True
        blobs, prefix = self.direct
        try:
            left = blobs.discard_staging(prefix)
        except MltrainError as exc:
            say(f"warning: the uploads left under {blobs.url}/{prefix} could not be removed: {exc.message}")
            return
        if left:
            say(f"removed {left} uploads of the node left under {blobs.url}/{prefix} (never adopted)")

    def cleanup(self) -> None:
        """Delete the run's Ray jobs and whatever is left under its staging prefix (when ``collect`` did not)."""
        delete_jobs(self.conn, self.job)
        self._discard(logging.getLogger("mltrain").warning)  # the run's output is closed by now


class RayJobs:
    """The executor of runs as Ray jobs (``mltrain-<run id>-<attempt>``) on the cluster of ``conn``."""

    def __init__(self, conn: RayConnection, stage: Stage) -> None:
        self.conn, self.stage = conn, stage
        self.direct: dict[str, BlobStore] = {}  # runs whose node uploads outputs/ and logs/ into this store itself

    def _policy(self, spec: RunSpec) -> tuple[tuple[BlobStore, str] | None, dict[str, str]]:
        """For a run in :attr:`direct`: (the store and the staging prefix, the job's variable holding the
        presigned POST policy, valid ``compute.signed_url_expires_s``); nothing when the store cannot sign one."""
        cfg = self.conn.config
        signed = signed_policy(self.direct.get(spec.run_id), spec.run_id, cfg.max_output_mb, cfg.signed_url_expires_s)
        if signed is None:
            return None, {}
        return signed[0], {OUTPUTS_POST_ENV: json.dumps(signed[1])}

    def submit_args(
        self, spec: RunSpec, env: Materialised, mark: str, extra: dict[str, str] | None = None, light: bool = False
    ) -> dict[str, Any]:
        cfg = self.conn.config
        grace = cfg.cancel_grace_s
        env_vars = {
            **(extra or {}),
            "MLTRAIN_RUN_ID": spec.run_id,
            "MLTRAIN_EXPERIMENT": spec.experiment,
            "PYTHONUNBUFFERED": "1",
            MARK_ENV: mark,
            GRACE_ENV: f"{grace:g}",
            MAX_OUTPUT_ENV: f"{cfg.max_output_mb:g}",
            # Ray's stop: SIGINT to the processes it sees, which the wrapper alone acts on (the
            # script has it blocked); SIGKILL after this (the wrapper ends sooner)
            "RAY_JOB_STOP_SIGNAL": "SIGINT",
            "RAY_JOB_STOP_WAIT_TIME_S": str(math.ceil(grace) + STOP_MARGIN_S),
        }
        return {
            "entrypoint": entrypoint(spec.script, spec.arguments),
            "runtime_env": runtime_env(cfg, self.stage, spec, env, env_vars, light),
            "metadata": {"mltrain_run_id": spec.run_id, "mltrain_experiment": spec.experiment},
            **{f"entrypoint_{k}": v for k, v in resources(cfg).items()},
        }

    def start(self, spec: RunSpec, env: Materialised, sink: OutputSink, attempt: int) -> ClusterHandle:
        """Submit ``attempt`` of the run as a Ray job (later attempts follow when its node dies)."""
        mark = f"\x1emltrain:{secrets.token_hex(6)}:"
        job = f"mltrain-{spec.run_id}"
        direct, policy = self._policy(spec)
        args = self.submit_args(spec, env, mark, policy, light=True)

        def carry() -> dict[str, Any]:
            self.stage.carried(spec)
            return self.submit_args(spec, env, mark, policy)

        self.conn.submit(f"{job}-{attempt}", args)
        light = self.stage.light(spec)
        return ClusterHandle(
            spec, self.conn, job, mark, sink, attempt, args, direct=direct, carry=carry if light else None
        )

    def attach(self, ref: JobRef, spec: RunSpec, sink: OutputSink, blobs: BlobStore | None) -> RunHandle | None:
        """The handle of the run's job, which adopts its node's uploads from ``blobs`` when ``ref`` names a
        staging prefix of this run's (:func:`staging_of`)."""
        conn = self.conn.for_ref(ref)
        attempts = conn.attempts(str(ref["job"]))
        if not attempts:
            return None
        direct, refused = staging_of(ref, spec, blobs)
        return ClusterHandle(
            spec, conn, str(ref["job"]), str(ref["mark"]), sink, len(attempts), None, direct=direct, refused=refused
        )

    def stop(self, ref: JobRef, grace_s: float | None = None) -> bool:
        """Stop every running attempt (``grace_s`` is ignored: the job keeps the one it was submitted with)."""
        return stop_attempts(self.conn.for_ref(ref), str(ref["job"]))


def staging_of(ref: JobRef, spec: RunSpec, blobs: BlobStore | None) -> tuple[tuple[BlobStore, str] | None, str | None]:
    """(the store and staging prefix of the node's uploads, why they are refused) from the stored ``ref``:
    a prefix is taken only when it is one the policy of ``spec``'s run would have (never ``..``, another
    run's, another store's)."""
    staging = ref.get("staging")
    if staging is None or blobs is None:
        return None, None  # without the store, announced uploads are not adopted (:meth:`ClusterHandle._adopt`)
    if isinstance(staging, str) and blobs.owns_staging(spec.run_id, staging):
        return (blobs, staging), None
    return None, (
        f"the job reference of run {spec.run_id} names the staging prefix {str(staging)[:120]!r}, which is not "
        f"one of this run's in {blobs.url}: its node's uploads are neither adopted nor removed"
    )
