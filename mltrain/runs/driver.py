"""The run driver: a resolved config through the whole run lifecycle.

resolve environment → snapshot → record (Queued) → Preparing (build env, make run folder) →
Running (stream output, ingest metrics, heartbeat, cancel) → Finalizing (collect files) →
Completed | Failed | Canceled → register → deploy. Everything that can be checked is checked
before the run is recorded, so a config error leaves no trace.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.compute.base import ComputeTarget, RunHandle, RunSpec
from mltrain.errors import ConfigError, MltrainError
from mltrain.procs import hostname, start_token
from mltrain.run_context import RUN_INFO_FILE
from mltrain.runs.control import RunCanceled, RunControl
from mltrain.workspace import Workspace, WorkspaceSettings
from mltrain.workspace.runs import (
    CANCELED,
    COMPLETED,
    FAILED,
    FINALIZING,
    PREPARING,
    RUNNING,
    new_run_id,
)

if TYPE_CHECKING:
    from mltrain.environments.resolve import ResolvedEnvironment
    from mltrain.registry.store import ModelVersion
    from mltrain.runs.output import RunOutput

POLL_S = 0.25
HEARTBEAT_S = 2.0
EXIT_CODES = {COMPLETED: 0, FAILED: 1, CANCELED: 130}


@dataclass
class RunResult:
    run_id: str
    experiment: str
    status: str
    run_dir: Path
    duration_s: float
    exit_code: int | None = None
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    models: list[ModelVersion] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # registration / deployment errors
    compute: str = "local"
    endpoint: dict[str, Any] | None = None

    @property
    def process_exit_code(self) -> int:
        code = EXIT_CODES.get(self.status, 1)
        return code if code or not self.problems else 1


def job_argv(arguments: Any, args: Any, bool_style: str = "flag") -> list[str]:
    """``job.arguments`` followed by ``job.args``.

    A dict gives ``--key value`` (``true`` a bare ``--key`` and ``false`` nothing, argparse's
    ``store_true`` convention, unless ``bool_style`` is ``value``: ``--key true|false``; a list
    gives ``--key v1 v2``; null leaves the key out); a list is passed as is. A nested dict, or any
    other shape, is a ConfigError.
    """
    if bool_style not in ("flag", "value"):
        raise ConfigError(f"job.bool_style is {bool_style!r}", hint="set job.bool_style to flag or value")
    argv: list[str] = []
    if isinstance(arguments, dict):
        for key, value in arguments.items():
            if value is None:
                continue
            flag = key if str(key).startswith("-") else f"--{key}"
            if isinstance(value, dict):
                raise ConfigError(
                    f"job.arguments.{key} is a nested mapping; a script argument takes a value or a list",
                    hint=f"give job.arguments.{key} a scalar or a list, or pass it as JSON text: "
                    f"job.arguments.{key}='{{...}}' quoted",
                )
            if isinstance(value, bool):
                if bool_style == "value":
                    argv += [flag, "true" if value else "false"]
                elif value:
                    argv.append(flag)
            elif isinstance(value, (list, tuple)):
                argv += [flag, *(str(v) for v in value)]
            else:
                argv += [flag, str(value)]
    elif isinstance(arguments, (list, tuple)):
        for item in arguments:
            if isinstance(item, (dict, list, tuple)):
                raise ConfigError(
                    f"job.arguments has a nested item {item!r}; a list of arguments holds plain values",
                    hint="write the list as it would be typed: job.arguments=[--C,2,--verbose]",
                )
        argv += [str(a) for a in arguments]
    elif arguments is not None:
        raise ConfigError(
            f"job.arguments is {arguments!r}; expected a mapping (--key value) or a list (passed as is)",
            hint="e.g. job.arguments={C: 2} or job.arguments=[--C,2]",
        )
    return argv + [str(a) for a in (args or [])]


_PREWARMED: dict[WorkspaceSettings, Workspace] = {}


def open_workspace(config: dict[str, Any]) -> Workspace:
    w = config["workspace"]
    settings = WorkspaceSettings.resolve(w["root"], w["db_url"], w["artifact_root"])
    return _PREWARMED.pop(settings, None) or Workspace(settings)


def prewarm() -> None:
    """Do what a run needs that does not depend on its config, while something else is busy (the
    prefork child composing the config): import the modules a run uses, and open the default
    workspace when it already exists (so nothing is created where the config may point elsewhere)."""
    import importlib

    for name in (
        "mltrain.compute.local",
        "mltrain.environments.resolve",
        "mltrain.environments.spec",
        "mltrain.environments.system",
        "mltrain.environments.venv",
        "mltrain.runs.output",
        "mltrain.runs.shim",
        "mltrain.runs.compat",
        "mltrain.runs.ingest",
        "mltrain.runs.finalize",
        "mltrain.runs.summary",
        "mltrain.registry.from_run",
        "mltrain.registry.store",
        "mltrain.snapshot",
        "pathspec",
        "subprocess",
    ):
        importlib.import_module(name)
    settings = WorkspaceSettings.resolve()
    if settings.db_url.startswith("sqlite:///") and Path(settings.db_url.removeprefix("sqlite:///")).is_file():
        _PREWARMED[settings] = Workspace(settings)


def build_compute(node: Any) -> ComputeTarget:
    if node is None:
        from mltrain.compute.local import LocalCompute

        return LocalCompute()
    from mltrain.config.plugins import instantiate_plugin

    return instantiate_plugin(node, "compute", ComputeTarget)


class RunDriver:
    """Runs one job of a composed config; ``run()`` returns its result."""

    def __init__(
        self,
        config: dict[str, Any],
        ws: Workspace | None = None,
        parent_run_id: str | None = None,
        echo: bool = True,
        overrides: list[str] | None = None,
    ) -> None:
        self.cfg = config
        self.ws = ws or open_workspace(config)
        self.parent_run_id = parent_run_id
        self.echo = echo
        self.overrides = overrides or []

    # -- checks before anything is recorded ------------------------------------------------------
    def _job(self) -> tuple[Path, str, list[str]]:
        job = self.cfg["job"]
        source = Path(str(job["source_dir"])).expanduser()
        source = (source if source.is_absolute() else Path.cwd() / source).resolve()
        if not source.is_dir():
            raise ConfigError(f"job.source_dir {source} does not exist", hint="set job.source_dir to your code folder")
        script = str(job["script"])
        if not (source / script).is_file():
            pys = sorted(p.name for p in source.glob("*.py"))[:10]
            raise ConfigError(
                f"job.script {script!r} not found in {source}",
                hint=f"set job.script to one of: {', '.join(pys)}" if pys else "check job.source_dir and job.script",
            )
        return source, script, job_argv(job["arguments"], job["args"], job.get("bool_style", "flag"))

    def _environment(self, compute: ComputeTarget) -> ResolvedEnvironment:
        from mltrain.environments.resolve import resolve
        from mltrain.environments.spec import EnvSpec

        spec = EnvSpec.from_config(self.cfg["environment"], base_dir=Path.cwd())
        env = resolve(spec, self.ws)
        # refuses a build this compute cannot run (or a missing Python), before anything is recorded
        compute.builder(env).check(env)
        return env

    # -- the lifecycle ----------------------------------------------------------------------------
    def run(self) -> RunResult:
        from mltrain.runs.compat import job_shim
        from mltrain.runs.output import RunOutput
        from mltrain.snapshot import git_info

        compute = build_compute(self.cfg["compute"])
        compute.check()
        if self.cfg.get("deploy") is not None:  # a bad deploy option fails before anything runs
            from mltrain.deploy.from_config import check_deploy_config

            check_deploy_config(self.cfg["deploy"])
        source, script, argv = self._job()
        env = self._environment(compute)
        settings = self.ws.settings
        limits = self.cfg["job"]["snapshot"]
        snapshot = self.ws.snapshots.take(
            source,
            max_files=int(limits["max_files"]),
            max_size_mb=float(limits["max_size_mb"]),
            exclude=(settings.root, settings.artifact_root),
        )
        commit, dirty = git_info(source)
        run_id = new_run_id()
        experiment = str(self.cfg["experiment_name"])
        run_dir = self.ws.run_dir(run_id)
        run_dir.mkdir(parents=True)
        self.ws.runs.create(
            run_id,
            experiment,
            parent_run_id=self.parent_run_id,
            config=self.cfg,
            overrides=self.overrides,
            script=script,
            arguments=argv,
            compute=compute.describe(),
            env_name=env.spec.name,
            env_hash=env.hash,
            snapshot_id=snapshot.id,
            source_dir=str(source),
            git_commit=commit,
            git_dirty=dirty,
            run_dir=str(run_dir),
            driver_host=hostname(),
            driver_pid=os.getpid(),
            driver_start=start_token(os.getpid()),
        )
        out = RunOutput(run_dir, echo=self.echo)
        if snapshot.left_out:
            out.log(
                f"snapshot: left out {' and '.join(snapshot.left_out)} of {source}: a run's outputs are what it writes"
            )
        shim_dir, shim_env = job_shim(self.cfg["job"], env)
        spec = RunSpec(
            run_id=run_id,
            experiment=experiment,
            run_dir=run_dir,
            snapshot_id=snapshot.id,
            script=script,
            arguments=argv,
            env_vars={**{str(k): str(v) for k, v in self.cfg["job"]["env_vars"].items()}, **shim_env},
            shim_dir=shim_dir,
        )
        from mltrain.runs.compat import serve_tracking

        tracking = serve_tracking(self.ws, spec, env)  # MLflow calls of the script record into this run
        result = RunResult(run_id, experiment, FAILED, run_dir, 0.0, compute=compute.describe())
        out.log(f"run {run_id} (experiment {experiment}) on {compute.describe()}; Ctrl-C cancels it")
        handle: RunHandle | None = None
        control = RunControl.current()
        try:
            with control.signals(), control.tracking() as slot:
                try:
                    self.ws.runs.set_status(run_id, PREPARING)
                    built = compute.prepare(self.ws, env, out.build_log, rebuild=env.spec.rebuild)
                    if not built.cached:
                        out.log(f"environment {env.spec.name} ready ({built.location})")
                    compute.upload(self.ws, spec)
                    self._write_run_info(run_dir, run_id, experiment, self.parent_run_id)
                    control.check()
                    handle = compute.start(spec, built, out)
                    control.started(slot, handle)
                    self.ws.runs.set_status(
                        run_id,
                        RUNNING,
                        child_pid=handle.pid,
                        child_start=start_token(handle.pid) if handle.pid else None,
                    )
                    self._follow(handle, result, control)
                except RunCanceled as exc:
                    result.status, result.error = CANCELED, str(exc)
                except MltrainError as exc:
                    result.status, result.error = FAILED, str(exc)
                    out.log(f"error: {exc}")
                slot.finishing = True
                self._finalize(compute, spec, handle, result, out, env)
        finally:
            if tracking is not None:
                tracking.close()
            out.close()
            compute.cleanup(spec, handle)
        result.duration_s = self.ws.runs.duration(run_id)  # as `mltrain runs show` has it
        return result

    @staticmethod
    def _write_run_info(run_dir: Path, run_id: str, experiment: str, parent_run_id: str | None = None) -> None:
        info = run_dir / RUN_INFO_FILE
        info.parent.mkdir(parents=True, exist_ok=True)
        info.write_text(json.dumps({"run_id": run_id, "experiment": experiment, "parent_run_id": parent_run_id}))

    def _follow(self, handle: RunHandle, result: RunResult, control: RunControl) -> None:
        from mltrain.runs.ingest import MetricsIngest

        self._ingest = ingest = MetricsIngest(self.ws, result.run_id)
        max_s = self.cfg["job"]["max_run_duration_s"]
        deadline = time.monotonic() + float(max_s) if max_s else None
        next_heartbeat = time.monotonic() + HEARTBEAT_S
        while True:
            code = handle.wait(POLL_S)
            ingest.feed(handle.read_metrics())
            now = time.monotonic()
            if code is not None:
                break
            if now >= next_heartbeat:
                next_heartbeat = now + HEARTBEAT_S
                if self.ws.runs.heartbeat(result.run_id):
                    handle.cancel("canceled with `mltrain runs cancel`")
            if deadline is not None and now > deadline:
                handle.cancel(f"canceled: ran longer than job.max_run_duration_s={max_s}")
                deadline = None
        while data := handle.read_metrics():
            ingest.feed(data)
        ingest.feed(b"", final=True)
        result.exit_code = code
        reason = handle.cancel_reason or (control.reason if code != 0 else None)
        if reason:
            result.status, result.error = CANCELED, reason
        elif code == 0:
            result.status = COMPLETED
        else:
            result.status = FAILED
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            result.error = f"the script failed ({how})"

    def _finalize(
        self,
        compute: ComputeTarget,
        spec: RunSpec,
        handle: RunHandle | None,
        result: RunResult,
        out: RunOutput,
        env: ResolvedEnvironment,
    ) -> None:
        from mltrain.runs.finalize import collect_artifacts

        run_id = result.run_id
        self.ws.runs.set_status(run_id, FINALIZING)
        try:
            if handle is not None:
                compute.collect(spec, handle)
        except MltrainError as exc:
            result.problems.append(f"collecting the run's files failed: {exc}")
        ingest = getattr(self, "_ingest", None)
        if result.status == FAILED and result.exit_code not in (None, 0):
            tail = out.stderr_tail()
            if tail:
                result.error = f"{result.error}; last lines of stderr:\n" + "\n".join(tail)
        collect_artifacts(self.ws, run_id, spec.run_dir)
        self.ws.runs.set_status(
            run_id, result.status, detail=result.error, exit_code=result.exit_code, error=result.error
        )
        result.metrics = self.ws.metrics.summary(run_id)
        if result.status == COMPLETED:
            self._register(result, env, ingest.register_requests if ingest else [])
            if result.models and self.cfg.get("deploy") is not None:
                self._deploy(result)

    def _register(self, result: RunResult, env: ResolvedEnvironment, requested: list[dict[str, Any]]) -> None:
        from mltrain.registry.from_run import register_run_model

        requests = list(requested)
        if self.cfg.get("register") is not None:
            requests.insert(0, dict(self.cfg["register"]))
        run = self.ws.runs.get(result.run_id)
        for req in requests:
            try:
                result.models.append(register_run_model(self.ws, run, req, env))
            except MltrainError as exc:
                result.problems.append(f"registration of {req.get('name')} failed: {exc}")

    def _deploy(self, result: RunResult) -> None:
        from mltrain.deploy.from_config import deploy_from_config

        try:
            result.endpoint = deploy_from_config(self.ws, self.cfg["deploy"], result.models[0])
        except MltrainError as exc:
            result.problems.append(f"deployment failed: {exc}")


def run_from_config(config: dict[str, Any], overrides: list[str] | None = None) -> int:
    """Run the job of a resolved ``config`` (plain containers), print its summary; return the exit code."""
    from mltrain.runs.summary import print_summary
    from mltrain.workspace import discard_new, is_new

    w = config["workspace"]
    settings = WorkspaceSettings.resolve(w["root"], w["db_url"], w["artifact_root"])
    new = is_new(settings)  # a run refused by its checks leaves no workspace behind
    try:
        result = RunDriver(config, overrides=overrides).run()
    except MltrainError as exc:
        print(f"mltrain: error: {exc}", file=sys.stderr)
        if new:
            discard_new(settings)
        return exc.exit_code
    except RunCanceled as exc:
        print(f"mltrain: {exc}; nothing was run", file=sys.stderr)
        if new:
            discard_new(settings)
        return EXIT_CODES[CANCELED]
    print_summary(result)
    return result.process_exit_code
