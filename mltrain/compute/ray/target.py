"""The Ray cluster compute target: each run a Ray job (:mod:`~mltrain.compute.ray.jobs`), or in a sweep
that prewarmed, a fork of a warm actor (:mod:`~mltrain.compute.ray.warm`); both executors share one
:class:`~mltrain.compute.ray.connection.RayConnection` and the staged snapshots."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mltrain.compute.base import ComputeTarget, JobRef, OutputSink, RunHandle, RunSpec
from mltrain.compute.node_outputs import node_writes_outputs
from mltrain.compute.ray.config import ClusterComputeConfig
from mltrain.compute.ray.connection import RayConnection
from mltrain.compute.ray.ending import delete_jobs
from mltrain.compute.ray.jobs import RayJobs
from mltrain.compute.ray.runtime import Stage, per_run
from mltrain.compute.ray.warm import WarmWorkers
from mltrain.errors import ComputeError

if TYPE_CHECKING:
    from pathlib import Path

    from ray.job_submission import JobSubmissionClient

    from mltrain.compute.delivery import Delivered
    from mltrain.compute.ray.warm_pool import WarmPool
    from mltrain.environments.base import EnvironmentBuilder, LogFn, Materialised
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.workspace import Workspace
    from mltrain.workspace.blobs import BlobStore


class ClusterCompute(ComputeTarget):
    """Runs jobs on a Ray cluster."""

    name = "cluster"
    Config = ClusterComputeConfig
    builds = ("venv", "system")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        assert isinstance(self.config, ClusterComputeConfig)
        self.config: ClusterComputeConfig = self.config
        self.conn = RayConnection(self.config)
        self.stage = Stage(self.config.signed_url_expires_s)
        self.jobs = RayJobs(self.conn, self.stage)
        self.warm = WarmWorkers(self.conn, self.stage, self.jobs.direct)
        # output files nodes uploaded into the artifact root themselves; bytes of outputs archives through logs
        self.stats = {"outputs_stored": 0, "bytes_received": 0}

    @property
    def client(self) -> JobSubmissionClient:
        """The cluster's Job Submission client."""
        return self.conn.client

    @property
    def _warm(self) -> WarmPool | None:
        """The warm actors of a sweep (once ``prewarm`` made them)."""
        return self.warm.pool

    def check(self) -> None:
        self.conn.check()

    def report(self, build_env: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Each node of the cluster (``mltrain compute check``): alive or dead, CPUs and memory free and
        total, custom resources, Ray version, token authentication (:mod:`~mltrain.compute.ray.report`).
        (``build_env`` is for hosts that install packages themselves: nodes install through Ray.)"""
        from mltrain.compute.ray.report import cluster_report

        return cluster_report(self.conn)

    def describe(self) -> str:
        return f"cluster ({self.config.address})"

    def capacity(self) -> int | None:
        """How many runs the cluster's alive nodes hold at once with these resources per run (Ray's
        State API); None when a run asks for no resource. A launcher runs at most
        ``min(max_concurrent_runs, capacity())`` trials at a time; more would wait, pending, in Ray."""
        need = per_run(self.config)
        if not need:
            return None
        try:
            nodes = self.conn.get("/api/v0/nodes?limit=10000&detail=false")["data"]["result"]["result"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ComputeError(f"cannot read the nodes of the Ray cluster at {self.conn.api}: {exc}") from exc
        total = 0
        for node in nodes:
            if node.get("state") != "ALIVE":
                continue
            have = node.get("resources_total") or {}
            total += min(int(float(have.get(k, 0)) // v) for k, v in need.items())
        return total

    # -- environment and snapshot --------------------------------------------------------------
    def builder(self, env: ResolvedEnvironment) -> EnvironmentBuilder:
        from mltrain.environments.ray_runtime import RayRuntimeEnvBuilder

        builder = RayRuntimeEnvBuilder(where=f"ray:{self.config.address}")
        builder.check(env)
        return builder

    def prepare(self, ws: Workspace, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        from mltrain.environments.base import record_use

        built = self.builder(env).materialise(env, log, rebuild=rebuild)
        record_use(ws, env, built)
        return built

    def upload(self, ws: Workspace, spec: RunSpec) -> None:
        """The snapshot into a staging folder (the job's working_dir, shared by a sweep's trials);
        the local run folder receives only what comes back. With inputs, ``deliver`` stages it. With an
        object-store artifact root, the run's node (a job's or a warm actor's) uploads outputs/ and logs/
        there itself."""
        if node_writes_outputs(ws.blobs, spec):
            self.jobs.direct[spec.run_id] = ws.blobs
        if not spec.inputs and not spec.outputs:
            self.stage.upload(ws, spec)

    def deliver(self, ws: Workspace, spec: RunSpec, log: LogFn) -> Delivered:
        """The snapshot staged with the inputs' manifests and the files no node can fetch itself
        (:mod:`~mltrain.compute.ray.inputs`); each node lays the inputs out before the script starts."""
        from mltrain.compute.delivery import Delivered, Moved
        from mltrain.compute.ray.inputs import carry_inputs

        moved = Moved()

        def fill(folder: Path, fetch: bool) -> None:
            moved.add(carry_inputs(spec, folder, log, fetch))

        if not self.stage.upload(ws, spec, fill):
            log("inputs: staged for the cluster already (0 bytes moved here)")
        return Delivered(moved)

    # -- jobs ----------------------------------------------------------------------------------
    def prewarm(self, env: Materialised, spec: RunSpec, modules: list[str], workers: int) -> bool:
        """Later runs of ``env`` and ``spec``'s snapshot are forked by ``workers`` warm actors instead
        of being Ray jobs of their own (:mod:`mltrain.compute.ray.warm`)."""
        return self.warm.prewarm(env, spec, modules, workers)

    def start(self, spec: RunSpec, env: Materialised, sink: OutputSink) -> RunHandle:
        # a warm trial whose node dies is retried as a Ray job (its second attempt)
        warm = self.warm.start(spec, env, sink, retry=lambda: self.jobs.start(spec, env, sink, 2))
        return warm if warm is not None else self.jobs.start(spec, env, sink, 1)

    def _executor(self, ref: JobRef) -> RayJobs | WarmWorkers:
        """The executor that made the job of ``ref``."""
        return self.warm if self.warm.made(ref) else self.jobs

    def attach(
        self, ref: JobRef, spec: RunSpec, sink: OutputSink, *, blobs: BlobStore | None = None
    ) -> RunHandle | None:
        """A Ray job or warm trial adopts its node's uploads from ``blobs``."""
        if self.conn.local_gone(ref):
            return None
        if self.warm.made(ref):
            return self.warm.attach(ref, spec, sink, blobs)
        return self.jobs.attach(ref, spec, sink, blobs)

    def stop(self, ref: JobRef, grace_s: float | None = None) -> bool:
        """Stop the run's job (every running attempt) or warm trial and wait until it ended."""
        if self.conn.local_gone(ref):
            return False
        return self._executor(ref).stop(ref, grace_s)

    def collect(self, spec: RunSpec, handle: RunHandle) -> None:
        """The handle's ``collect``, counted in :attr:`stats`."""
        try:
            handle.collect()
        finally:
            self.stats["outputs_stored"] += len(handle.stored)
            self.stats["bytes_received"] += handle.received

    def cleanup(self, spec: RunSpec, handle: RunHandle | None) -> None:
        """The handle's cleanup; without one (canceled while starting) the run's Ray jobs are deleted."""
        self.jobs.direct.pop(spec.run_id, None)
        self.stage.forget(spec.run_id)
        if handle is not None:
            handle.cleanup()
        else:
            delete_jobs(self.conn, f"mltrain-{spec.run_id}")

    def close(self) -> None:
        self.warm.close()
        self.stage.close()
        self.conn.close()
