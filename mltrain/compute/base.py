"""The compute-target plugin point: a run as a lifecycle of named steps.

``check`` (before anything is recorded) → ``prepare`` (materialise the environment where the job
runs) → ``upload`` (the snapshot into the run folder there) → ``start`` (returns a RunHandle that
streams output) → ``RunHandle.cancel`` (on request) → ``collect`` (outputs/ and logs/ back into the
local run folder) → ``cleanup``. Local, Docker, SSH and Ray targets implement the same steps; the
driver (mltrain/runs/driver.py) and sweep launchers call only these.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mltrain.errors import ComputeError

if TYPE_CHECKING:
    from mltrain.environments.base import EnvironmentBuilder, LogFn, Materialised
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.workspace import Workspace

METRICS_REL = ".mltrain/metrics.jsonl"


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


class OutputSink(Protocol):
    """Where a running job's output goes (console, run logs)."""

    def write(self, data: bytes, stream: str) -> None:
        """Raw bytes the job wrote on ``stream`` ("stdout" or "stderr")."""

    def log(self, line: str) -> None:
        """A line of mltrain's own about the run."""


class RunHandle(ABC):
    """A started job."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self._metrics_offset = 0
        self.cancel_reason: str | None = None

    @abstractmethod
    def wait(self, timeout: float | None) -> int | None:
        """The exit code once the job (and its output streams) ended, else None after ``timeout``."""

    @abstractmethod
    def cancel(self, reason: str, force: bool = False) -> None:
        """Begin stopping the job (without blocking); ``force`` kills at once."""

    @property
    def pid(self) -> int | None:
        """A local process id that identifies the job, if there is one."""
        return None

    def read_metrics(self, limit: int = 8 << 20) -> bytes:
        """Up to ``limit`` new bytes of the job's metrics file since the last call (b"" when there
        are none); reads the local run folder by default."""
        path = self.spec.run_dir / METRICS_REL
        try:
            with open(path, "rb") as f:
                f.seek(self._metrics_offset)
                data = f.read(limit)
        except FileNotFoundError:
            return b""
        self._metrics_offset += len(data)
        return data


class ComputeTarget(ABC):
    """A place where jobs run. Subclasses are instantiated from ``conf/compute/*.yaml``."""

    name: str = "compute"

    def check(self) -> None:
        """Raise ComputeError when the target cannot run jobs now (called before anything runs)."""

    def builder(self, env: ResolvedEnvironment) -> EnvironmentBuilder:
        """The environment builder for ``env`` on this target (venv or system by default)."""
        build = env.spec.build
        if build == "system":
            from mltrain.environments.system import SystemBuilder

            return SystemBuilder()
        if build == "venv":
            from mltrain.environments.venv import VenvBuilder

            return VenvBuilder()
        raise ComputeError(
            f"environment {env.spec.name} is built as a Docker image, which {self.name} compute cannot run",
            hint="run it with +compute=docker, or set environment.build=venv",
        )

    def prepare(self, ws: Workspace, env: ResolvedEnvironment, log: LogFn, rebuild: bool = False) -> Materialised:
        """Materialise ``env`` where jobs run (built only on a cache miss) and record its use."""
        from mltrain.environments.base import record_use

        built = self.builder(env).materialise(env, log, rebuild=rebuild)
        record_use(ws, env, built)
        return built

    def upload(self, ws: Workspace, spec: RunSpec) -> None:
        """Make the run folder where the job runs: the snapshot's files (locally by default)."""
        ws.snapshots.restore(spec.snapshot_id, spec.run_dir)

    @abstractmethod
    def start(self, spec: RunSpec, env: Materialised, sink: OutputSink) -> RunHandle:
        """Start the job; output streams to ``sink`` until it ends."""

    def collect(self, spec: RunSpec, handle: RunHandle) -> None:
        """Bring outputs/ and logs/ into ``spec.run_dir`` (nothing to do when they are there)."""

    def cleanup(self, spec: RunSpec, handle: RunHandle | None) -> None:
        """Release what the run used on the target."""

    def describe(self) -> str:
        return self.name


def job_environment(
    spec: RunSpec, env: Materialised, run_dir: str, shim_dir: str | None, inherit: bool = True
) -> dict[str, str]:
    """The environment variables of a job: the caller's (unless ``inherit`` is False, e.g. for a
    container), then the environment's and the job's own, plus where to report
    (``MLTRAIN_RUN_DIR``) and the in-script API on ``PYTHONPATH``."""
    skip = ("HYDRA_FULL_ERROR", "VIRTUAL_ENV")
    base = {k: v for k, v in os.environ.items() if k not in skip} if inherit else {}
    out = {**base, **env.env_vars, **spec.env_vars}
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
