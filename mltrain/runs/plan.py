"""A run plan: what every trial of a run or a sweep shares, checked and built once.

``RunPlan.build(config)`` checks everything that can be checked before anything is recorded (the
workspace database, the compute target and its options, the deploy options, the job's folder and
script, the environment spec and whether this target can run it), resolves the environment, takes
the snapshot and opens the workspace. ``plan.prepare()`` materialises the environment once, whichever trial asks first.
Trials (:class:`mltrain.runs.trial.Trial`) differ only in what :data:`PER_TRIAL` names; a config
that differs elsewhere needs a plan of its own (``plan.shares(config)``). A plan holds no process-wide
state, so a launcher may run its trials from many threads.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mltrain.compute.base import ComputeTarget
from mltrain.compute.targets import compute_from_config
from mltrain.errors import ConfigError
from mltrain.runs.job_data import JobData, has_data
from mltrain.workspace import Workspace, WorkspaceSettings

if TYPE_CHECKING:
    from mltrain.environments.base import LogFn, Materialised
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.environments.spec import EnvSpec
    from mltrain.workspace.snapshots import Snapshot

# Config paths a trial may change without a plan of its own (the rest must equal the plan's).
PER_TRIAL: tuple[tuple[str, ...], ...] = (
    ("experiment_name",),
    ("job", "arguments"),
    ("job", "args"),
    ("job", "env_vars"),
    ("job", "max_run_duration_s"),
    ("register",),
    ("deploy",),
    ("sweep",),
)


def plan_key(config: Mapping[str, Any]) -> str:
    """The part of a resolved config that a plan fixes, as canonical JSON."""
    shared = copy.deepcopy(dict(config))
    for path in PER_TRIAL:
        node: Any = shared
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return json.dumps(shared, sort_keys=True, default=str)


def workspace_settings(config: Mapping[str, Any]) -> WorkspaceSettings:
    """The settings of the workspace a resolved config names."""
    w = config["workspace"]
    return WorkspaceSettings.resolve(w["root"], w["db_url"], w["artifact_root"])


def open_workspace(config: Mapping[str, Any]) -> Workspace:
    return Workspace(workspace_settings(config))


def job_source(config: Mapping[str, Any]) -> tuple[Path, str]:
    """The job's source folder (absolute) and script: a relative path inside it that exists."""
    from mltrain.runs.checks import check_job

    job = config["job"]
    source = Path(str(job["source_dir"])).expanduser()
    source = (source if source.is_absolute() else Path.cwd() / source).resolve()
    if not source.is_dir():
        raise ConfigError(f"job.source_dir {source} does not exist", hint="set job.source_dir to your code folder")
    script = check_job(dict(config), source)
    if not (source / script).is_file():
        pys = sorted(p.name for p in source.glob("*.py"))[:10]
        raise ConfigError(
            f"job.script {script!r} not found in {source}",
            hint=f"set job.script to one of: {', '.join(pys)}" if pys else "check job.source_dir and job.script",
        )
    return source, script


class CheckedConfig(NamedTuple):  # not a frozen dataclass: defined by every run, ~0.5 ms less start-up
    """What :func:`check_config` found: the compute target (not yet connected), the job's folder and
    script, the environment spec."""

    compute: ComputeTarget
    source: Path
    script: str
    env_spec: EnvSpec


def check_config(config: Mapping[str, Any]) -> CheckedConfig:
    """The checks of a config that need neither the workspace nor the network: the compute target's
    and deploy target's options, the register keys, the job's folder and script, the environment spec.
    ConfigError (or the spec's error) naming the problem."""
    from mltrain.environments.spec import EnvSpec

    compute = compute_from_config(config["compute"])
    if config.get("deploy") is not None:  # a bad deploy option fails before anything runs
        from mltrain.deploy.from_config import check_deploy_config

        check_deploy_config(config["deploy"])
    if config.get("register") is not None:  # register keys without a model name: refused now
        from mltrain.registry.configs import register_request

        register_request(config["register"])
    if has_data(config["job"]):  # input/output names, keys, modes and references
        from mltrain.runs.inputs import check_job_data

        check_job_data(config["job"])
    source, script = job_source(config)
    spec = EnvSpec.from_config(config["environment"], base_dir=Path.cwd())
    return CheckedConfig(compute, source, script, spec)


@dataclass
class RunPlan:
    """The shared part of one or many trials; build it with :meth:`build`."""

    config: dict[str, Any]
    ws: Workspace
    compute: ComputeTarget
    env: ResolvedEnvironment
    source: Path
    script: str
    snapshot: Snapshot
    git_commit: str | None
    git_dirty: bool | None
    shim_dir: Path | None
    shim_env: dict[str, str]
    data: JobData = field(default_factory=JobData)  # job.inputs (files listed) and job.outputs
    _key: str = ""
    _built: Materialised | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(
        cls, config: dict[str, Any], ws: Workspace | None = None, resolved: ResolvedEnvironment | None = None
    ) -> RunPlan:
        """Check ``config`` and build what its trials share; nothing is recorded as a run. ``resolved``:
        the environment already resolved (a rerun's recorded lock), else it is resolved from the config."""
        from mltrain.environments.resolve import resolve
        from mltrain.runs.compat import job_shim
        from mltrain.runs.recovery import recover_orphans
        from mltrain.workspace.snapshots import git_info

        ws = ws or open_workspace(config)
        ws.db.check_writable()  # a damaged database: refused before anything is written to it
        recover_orphans(ws)
        checked = check_config(config)
        compute = checked.compute
        compute.check()
        source, script = checked.source, checked.script
        env = resolved or resolve(checked.env_spec, ws)
        compute.builder(env).check(env)  # a build this target cannot run, a missing Python: refused now
        data = JobData()
        if has_data(config["job"]):  # unknown data, an unreachable store: refused now
            from mltrain.runs.inputs import job_data

            data = job_data(ws, config["job"])
        limits = config["job"]["snapshot"]
        settings = ws.settings
        snapshot = ws.snapshots.take(
            source,
            max_files=int(limits["max_files"]),
            max_size_mb=float(limits["max_size_mb"]),
            exclude=settings.local_folders,
        )
        commit, dirty = git_info(source)
        shim_dir, shim_env = job_shim(config["job"], env)  # the in-script API (and Azure's, unless turned off)
        return cls(
            config,
            ws,
            compute,
            env,
            source,
            script,
            snapshot,
            commit,
            dirty,
            shim_dir,
            shim_env,
            data=data,
            _key=plan_key(config),
        )

    def __enter__(self) -> RunPlan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the plan holds on its target (connections); its trials have ended."""
        self.compute.close()

    def record_fields(self) -> dict[str, Any]:
        """What every run recorded from this plan stores about its code, environment, compute and driver
        (this process)."""
        import os

        from mltrain.remote.procs import hostname, start_token

        return {
            "script": self.script,
            "compute": self.compute.describe(),
            "env_name": self.env.spec.name,
            "env_hash": self.env.hash,
            "snapshot_id": self.snapshot.id,
            "source_dir": str(self.source),
            "git_commit": self.git_commit,
            "git_dirty": self.git_dirty,
            "driver_host": hostname(),
            "driver_pid": os.getpid(),
            "driver_start": start_token(os.getpid()),
        }

    def shares(self, config: Mapping[str, Any]) -> bool:
        """True when a trial of ``config`` can run from this plan."""
        return plan_key(config) == self._key

    def prepare(self, log: LogFn) -> Materialised:
        """The environment, materialised where jobs run: built by the first caller (its ``log`` gets
        the build output), reused by every later one."""
        with self._lock:
            if self._built is None:
                self._built = self.compute.prepare(self.ws, self.env, log, rebuild=self.env.spec.rebuild)
                return self._built
        from dataclasses import replace

        return replace(self._built, cached=True)
