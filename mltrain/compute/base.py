"""The compute-target plugin point: a run as a lifecycle of named steps.

``check`` (before anything is recorded) → ``prepare`` (materialise the environment where the job
runs) → ``upload`` (the snapshot into the run folder there) → ``deliver`` (the input manifests the plan
hands over: files by content, from a cache on the node) → ``start`` (returns a RunHandle that
streams output) → ``RunHandle.cancel`` (on request) → ``collect`` (outputs/ and logs/ back into the
local run folder) → ``cleanup``. Local, Docker, SSH and Ray targets (the packages beside this module)
implement the same steps; the run plan and its trials (mltrain/runs/) and sweep launchers call only
these. What a job left to bring back or release belongs to its handle (``RunHandle.collect`` and
``cleanup``, which the target's steps call), so a target never asks what kind of handle it holds.

A started job is described by a small JSON reference (``RunHandle.ref``, a :data:`JobRef`) that is
stored on the run, so another process can rebuild its handle (``attach``) or stop it (``stop``):
``mltrain runs cancel`` and driver-lost recovery go through the target that started the run.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from mltrain.compute.configs import ComputeConfig
from mltrain.errors import ComputeError
from mltrain.run_context import METRICS_FILE

if TYPE_CHECKING:
    from mltrain.compute.data_io import InputSpec, OutputSpec
    from mltrain.compute.delivery import Delivered
    from mltrain.environments.base import EnvironmentBuilder, LogFn, Materialised
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.workspace import Workspace
    from mltrain.workspace.blobs import BlobStore

JobRef = dict[str, Any]  # JSON-serialisable; "kind" names the target kind that made it


@dataclass
class RunSpec:
    """Everything a compute target needs to run one job."""

    run_id: str
    experiment: str
    run_dir: Path  # the local run folder: results end up here whatever the target
    snapshot_id: str
    script: str  # relative to the snapshot root
    arguments: list[str] = field(default_factory=list)
    env_vars: dict[str, str] = field(default_factory=dict)  # job env vars (environment's come separately)
    shim_dir: Path | None = None  # sources of the in-script API, put on the job's PYTHONPATH
    inputs: tuple[InputSpec, ...] = ()  # data the job reads (manifests: files by content)
    outputs: tuple[OutputSpec, ...] = ()  # folders the job writes that become data versions

    def manifests(self) -> list[dict[str, Any]]:
        """The inputs' manifests as nodes read them (JSON)."""
        return [i.manifest() for i in self.inputs]

    def io_paths(self, run_dir: str) -> dict[str, str]:
        """``{"inputs.NAME": path, "outputs.NAME": path}`` for a run folder at ``run_dir`` where the job runs."""
        from mltrain.remote import inputs as node_io  # the data path: only for a job with data

        return node_io.io_paths(run_dir, self.manifests(), [o.name for o in self.outputs])

    def argv(self, run_dir: str) -> list[str]:
        """The script's arguments, ``${inputs.NAME}`` / ``${outputs.NAME}`` resolved for ``run_dir``."""
        if not self.inputs and not self.outputs:
            return list(self.arguments)
        from mltrain.remote import inputs as node_io

        paths = self.io_paths(run_dir)
        return [node_io.substitute(a, paths) for a in self.arguments]

    def io_environment(self, run_dir: str) -> dict[str, str]:
        """The job's variables with ``${inputs.NAME}`` / ``${outputs.NAME}`` resolved for ``run_dir``, plus
        ``MLTRAIN_INPUT_NAME`` / ``MLTRAIN_OUTPUT_NAME``."""
        if not self.inputs and not self.outputs:
            return dict(self.env_vars)
        from mltrain.remote import inputs as node_io

        return node_io.resolve_job([], dict(self.env_vars), self.io_paths(run_dir))[1]


class OutputSink(Protocol):
    """Where a running job's output goes (console, run logs)."""

    def write(self, data: bytes, stream: str) -> None:
        """Raw bytes the job wrote on ``stream`` ("stdout" or "stderr")."""

    def log(self, line: str) -> None:
        """A line of mltrain's own about the run."""


class NullSink:
    """An OutputSink that drops everything (a handle attached only to stop or collect a job)."""

    def write(self, data: bytes, stream: str) -> None:
        pass

    def log(self, line: str) -> None:
        pass


def node_label(ip: str, node_id: str = "") -> str:
    """The ``node`` of a job reference: where the job ran, as shown by the summary, ``runs show`` and
    the dashboard (``ip``, and the cluster's own id of the node when there is one)."""
    return f"{ip} (Ray node {node_id})" if node_id else ip


class RunHandle(ABC):
    """A started job (or one re-attached from its reference). ``attempt`` changes when the target
    starts the run again (its node or host was lost): the runner then sets the lost attempt's metrics
    apart; ``lost_reason`` says why a job ended without its script's exit code."""

    attempt: int = 1

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self._metrics_offset = 0
        self.cancel_reason: str | None = None
        self.lost_reason: str | None = None  # e.g. "the node running Ray job ... died": no exit code
        self.stored: dict[str, tuple[str, int]] = {}  # files of the run its node stored itself: path -> (sha256, size)
        self.received = 0  # bytes of outputs archives that came through the driver

    @property
    @abstractmethod
    def ref(self) -> JobRef:
        """The durable reference of this job: enough for ``attach``/``stop`` in another process."""

    @property
    def where(self) -> str | None:
        """Where the job runs, when narrower than the target's ``describe()`` (an SSH pool's host): the
        run record's ``compute``. None: the target's description."""
        return None

    @abstractmethod
    def wait(self, timeout: float | None) -> int | None:
        """The exit code once the job (and its output streams) ended, else None after ``timeout``."""

    @abstractmethod
    def cancel(self, reason: str, force: bool = False) -> None:
        """Begin stopping the job (without blocking); ``force`` kills at once."""

    def collect(self) -> None:
        """Bring the job's outputs/ and logs/ into ``spec.run_dir`` (nothing to do when they are there)."""

    def cleanup(self) -> None:
        """Release what the job holds where it ran (its container, remote folder, cluster job)."""

    def read_metrics(self, limit: int = 8 << 20) -> bytes:
        """Up to ``limit`` new bytes of the job's metrics file since the last call (b"" when there
        are none); reads the local run folder by default."""
        path = self.spec.run_dir / METRICS_FILE
        try:
            with open(path, "rb") as f:
                f.seek(self._metrics_offset)
                data = f.read(limit)
        except FileNotFoundError:
            return b""
        self._metrics_offset += len(data)
        return data


class ComputeTarget(ABC):
    """A place where jobs run. Built-in targets are created from their typed ``Config``
    (``conf/compute/*.yaml``); a user's own subclass may take whatever options it likes."""

    name: ClassVar[str] = "compute"
    Config: ClassVar[type[ComputeConfig]] = ComputeConfig
    builds: ClassVar[tuple[str, ...]] = ("system", "venv")  # environment.build values it runs directly

    def __init__(self, **options: Any) -> None:
        self.config = self.Config(**options)

    @property
    def cancel_grace_s(self) -> float:
        config = getattr(self, "config", None)
        return config.cancel_grace_s if isinstance(config, ComputeConfig) else 5.0

    def check(self) -> None:
        """Raise ComputeError when the target cannot run jobs now (called before anything runs)."""

    def builder(self, env: ResolvedEnvironment) -> EnvironmentBuilder:
        """The environment builder for ``env`` on this target."""
        from mltrain.environments.builders import builder_for

        if env.spec.build not in self.builds:
            raise ComputeError(
                f"environment {env.spec.name} is built with build: {env.spec.build}, which {self.name} compute "
                "cannot run",
                hint=f"use an environment with build: {' or '.join(self.builds)}, or another compute target",
            )
        return builder_for(env.spec.build)

    def prepare(self, ws: Workspace, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        """Materialise ``env`` where jobs run (built only on a cache miss) and record its use."""
        from mltrain.environments.base import record_use

        built = self.builder(env).materialise(env, log, rebuild=rebuild)
        record_use(ws, env, built)
        return built

    def upload(self, ws: Workspace, spec: RunSpec) -> None:
        """Make the run folder where the job runs: the snapshot's files (locally by default)."""
        ws.snapshots.restore(spec.snapshot_id, spec.run_dir)

    def deliver(self, ws: Workspace, spec: RunSpec, log: LogFn) -> Delivered:
        """Put the run's inputs where the job runs (after ``upload``, before ``start``): each file from a
        cache on the node keyed by its content, fetched through the input's source only when the cache
        lacks it, then laid out under the run folder (``mount``: read-only, ``download``: a private copy);
        make the outputs' folders. By default on this machine, in ``spec.run_dir``. ``log`` gets a line per
        input (what moved). The result says what to check after the run and what to release."""
        from mltrain.compute.delivery import deliver_here

        return deliver_here(spec.inputs, spec.outputs, spec.run_dir, log)

    def capacity(self) -> int | None:
        """How many jobs the target runs at once (a sweep's default ``max_concurrent_runs``); None when
        it does not say (the launcher then uses this machine's CPU count)."""
        return None

    def prewarm(self, env: Materialised, spec: RunSpec, modules: list[str], workers: int) -> bool:
        """Optionally make later ``start`` calls of ``env`` cheap (``workers`` warm interpreters that
        imported ``modules``); False when the target does not (the default)."""
        return False

    @abstractmethod
    def start(self, spec: RunSpec, env: Materialised, sink: OutputSink) -> RunHandle:
        """Start the job; output streams to ``sink`` until it ends."""

    @abstractmethod
    def attach(
        self, ref: JobRef, spec: RunSpec, sink: OutputSink, *, blobs: BlobStore | None = None
    ) -> RunHandle | None:
        """The handle of the job ``ref`` (started by this kind of target, maybe in another process),
        or None when it no longer exists. Output that was not streamed to its driver may be lost.
        ``blobs``: the workspace's blob store, where a node that uploads its outputs itself put them (the
        handle's ``collect`` adopts them; None: it cannot). ``ref`` is read from a record: untrusted."""

    @abstractmethod
    def stop(self, ref: JobRef, grace_s: float | None = None) -> bool:
        """Stop the job ``ref`` from any process: a polite signal (SIGTERM, so the in-script API
        flushes), ``grace_s`` (default ``cancel_grace_s``) to end, then a kill. Blocks until it is gone;
        False when there was nothing to stop. ComputeError when the target cannot be reached."""

    def collect(self, spec: RunSpec, handle: RunHandle) -> None:
        """Bring outputs/ and logs/ into ``spec.run_dir``: the handle's ``collect``."""
        handle.collect()

    def cleanup(self, spec: RunSpec, handle: RunHandle | None) -> None:
        """Release what the run used on the target: the handle's ``cleanup`` (None: the run was
        canceled before its job started; a target releases what ``upload`` took)."""
        if handle is not None:
            handle.cleanup()

    def close(self) -> None:
        """Release connections this target object holds (after the last trial of a plan)."""

    def describe(self) -> str:
        return self.name


def job_environment(
    spec: RunSpec, env: Materialised, run_dir: str, shim_dir: str | None, inherit: bool = True
) -> dict[str, str]:
    """The environment variables of a job: the caller's (unless ``inherit`` is False, e.g. for a
    container), then the environment's and the job's own, plus where to report
    (``MLTRAIN_RUN_DIR``), the inputs' and outputs' paths there and the in-script API on ``PYTHONPATH``."""
    skip = ("HYDRA_FULL_ERROR", "VIRTUAL_ENV")
    base = {k: v for k, v in os.environ.items() if k not in skip} if inherit else {}
    out = {**base, **env.env_vars, **spec.io_environment(run_dir)}
    out.update(
        {
            "MLTRAIN_RUN_DIR": run_dir,
            "MLTRAIN_RUN_ID": spec.run_id,
            "MLTRAIN_EXPERIMENT": spec.experiment,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if shim_dir:
        out["PYTHONPATH"] = os.pathsep.join(p for p in (shim_dir, out.get("PYTHONPATH", "")) if p)
    if "VIRTUAL_ENV" in env.env_vars:
        out["PATH"] = os.pathsep.join((os.path.join(env.env_vars["VIRTUAL_ENV"], "bin"), out.get("PATH", "")))
    return out
