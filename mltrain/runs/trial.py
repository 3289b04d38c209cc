"""One trial of a run plan: its own record, run folder, arguments, job, metrics and result.

Queued (recorded) → Preparing (the plan's environment, the snapshot into the run folder) → Running
(output streamed, metrics ingested, heartbeat, cancel) → Finalizing (files collected) →
Completed | Failed | Canceled → register → deploy. The started job's reference is stored on the run
so cancel and recovery can reach it from another process. Trials of one plan may run in threads.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.compute.base import RunHandle, RunSpec
from mltrain.compute.configs import redact_overrides, redact_secrets
from mltrain.environments.variables import read_references
from mltrain.errors import ConfigError, MltrainError
from mltrain.run_context import RUN_INFO_FILE
from mltrain.runs.arguments import job_argv
from mltrain.runs.control import RunCanceled, RunControl
from mltrain.runs.job_data import pin_inputs
from mltrain.runs.result import RunResult
from mltrain.workspace.runs import CANCELED, COMPLETED, FAILED, FINALIZING, PREPARING, RUNNING, new_run_id

if TYPE_CHECKING:
    from mltrain.compute.delivery import Delivered
    from mltrain.runs.ingest import MetricsIngest
    from mltrain.runs.output import RunOutput
    from mltrain.runs.plan import RunPlan

POLL_S = 0.25
HEARTBEAT_S = 2.0
CANCELED_BY_COMMAND = "canceled with `mltrain runs cancel`"


class Trial:
    """One run of ``plan`` with ``config``'s per-trial values; ``run()`` returns its result."""

    def __init__(
        self,
        plan: RunPlan,
        config: dict[str, Any],
        overrides: list[str],
        parent_run_id: str | None = None,
        echo: bool = True,
        control: RunControl | None = None,
        defer_models: bool = False,
        run_id: str | None = None,
    ) -> None:
        if config is not plan.config and not plan.shares(config):
            raise ConfigError(
                "this trial changes more than its arguments (environment, compute or job folder)",
                hint="a sweep over those needs one plan per value",
            )
        self.plan = plan
        self.cfg = config
        self.overrides = overrides
        self.parent_run_id = parent_run_id
        self.echo = echo
        self.control = control or RunControl.current()
        self.defer_models = defer_models  # register/deploy only when finish_models() is called (a sweep's best)
        job = config["job"]
        self.argv = job_argv(job["arguments"], job["args"], job.get("bool_style", "flag"))
        if config.get("register") is not None:  # keys set without a model name: refused before the run
            from mltrain.registry.configs import register_request

            register_request(config["register"])
        self.recorded = run_id is not None  # recorded Queued already (a detached run): its record is completed
        self.run_id = run_id or new_run_id()
        self._ingest: MetricsIngest | None = None
        self._problems_recorded = 0  # result.problems already stored on the run
        self._job_ended: Callable[[RunResult], None] | None = None

    @property
    def ws(self):  # noqa: ANN201 - the plan's Workspace
        return self.plan.ws

    def _record(self) -> tuple[RunSpec, RunResult]:
        plan, run_id = self.plan, self.run_id
        experiment = str(self.cfg["experiment_name"])
        run_dir = self.ws.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=self.recorded)
        fields = {
            "parent_run_id": self.parent_run_id,
            "config": redact_secrets(pin_inputs(self.cfg, plan.data)),
            "overrides": redact_overrides(self.overrides),
            "arguments": self.argv,
            "run_dir": str(run_dir),
            **plan.record_fields(),
        }
        if self.recorded:
            self.ws.runs.update(run_id, **fields)
        else:
            self.ws.runs.create(run_id, experiment, **fields)
        spec = RunSpec(
            run_id=run_id,
            experiment=experiment,
            run_dir=run_dir,
            snapshot_id=plan.snapshot.id,
            script=plan.script,
            arguments=self.argv,
            env_vars={**read_references(self.cfg["job"]["env_vars"], "job.env_vars"), **plan.shim_env},
            shim_dir=plan.shim_dir,
            inputs=plan.data.input_specs,
            outputs=plan.data.outputs,
        )
        if plan.data.inputs:
            from mltrain.runs.inputs import record_inputs

            record_inputs(self.ws, run_id, plan.data)
        return spec, RunResult(run_id, experiment, FAILED, run_dir, 0.0, compute=plan.compute.describe())

    def run(self, job_ended: Callable[[RunResult], None] | None = None) -> RunResult:
        """Record, prepare, start and follow the job, then finalize. ``job_ended(result)`` is called
        once, as soon as the job ended (its status known, its files not yet collected) or failed to
        start: a sweep then starts its next child while this one finalizes."""
        self._job_ended = job_ended
        from mltrain.runs.output import RunOutput

        compute = self.plan.compute
        spec, result = self._record()
        out = RunOutput(spec.run_dir, echo=self.echo)
        for line in self.plan.snapshot.skipped:
            out.log(f"warning: snapshot of {self.plan.source}: {line}")
        if self.plan.snapshot.left_out:
            left_out = " and ".join(self.plan.snapshot.left_out)
            out.log(f"snapshot: left out {left_out} of {self.plan.source}: a run's outputs are what it writes")
        stop = "Ctrl-C cancels it" if self.echo else f"`mltrain runs cancel {spec.run_id}` cancels it"
        out.log(f"run {spec.run_id} (experiment {spec.experiment}) on {compute.describe()}; {stop}")
        from mltrain.runs.compat import serve_tracking

        tracking = serve_tracking(self.ws, spec, self.plan.env)  # MLflow calls of the script record into this run
        handle: RunHandle | None = None
        delivered: Delivered | None = None
        control = self.control
        try:
            with control.signals(), control.tracking() as slot:
                try:
                    self.ws.runs.set_status(spec.run_id, PREPARING)
                    built = self.plan.prepare(out.build_log)
                    if not built.cached:
                        out.log(f"environment {self.plan.env.spec.name} ready ({built.location})")
                    compute.upload(self.ws, spec)
                    if spec.inputs or spec.outputs:
                        delivered = compute.deliver(self.ws, spec, out.log)
                    write_run_info(spec.run_dir, spec.run_id, spec.experiment, self.parent_run_id)
                    control.check()
                    handle = compute.start(spec, built, out)
                    control.started(slot, handle)
                    self.ws.runs.set_status(spec.run_id, RUNNING, job_ref=handle.ref)
                    self._ran_on(handle, result)
                    self._follow(handle, result, control)
                    self._ran_on(handle, result)  # a run started again elsewhere (compute.retries)
                except RunCanceled as exc:
                    result.status, result.error = CANCELED, str(exc)
                except MltrainError as exc:
                    result.status, result.error = FAILED, str(exc)
                    out.log(f"error: {exc}")
                slot.finishing = True
                self._ended(result)
                if delivered is not None:
                    result.problems.extend(delivered.check())
                self._finalize(spec, handle, result, out)
        finally:
            self._ended(result)
            if tracking is not None:
                result.params = list(tracking.state.params)
                tracking.close()
            out.close()
            if delivered is not None:
                delivered.release()
            compute.cleanup(spec, handle)
        result.duration_s = self.ws.runs.duration(spec.run_id)  # as `mltrain runs show` has it
        return result

    def _ran_on(self, handle: RunHandle, result: RunResult) -> None:
        """Record where the job runs when the handle knows it more narrowly (the host of an SSH pool)."""
        where = handle.where
        if where and where != result.compute:
            self.ws.runs.update(result.run_id, compute=where)
            result.compute = where

    def _ended(self, result: RunResult) -> None:
        callback, self._job_ended = self._job_ended, None
        if callback is not None:
            callback(result)

    def _follow(self, handle: RunHandle, result: RunResult, control: RunControl) -> None:
        from mltrain.runs.ingest import MetricsIngest

        self._ingest = ingest = MetricsIngest(self.ws, result.run_id)
        max_s = self.cfg["job"]["max_run_duration_s"]
        deadline = time.monotonic() + float(max_s) if max_s else None
        next_heartbeat = time.monotonic() + HEARTBEAT_S
        job_ref = handle.ref
        attempt, attempts, noted = handle.attempt, 1, ""
        while True:
            code = handle.wait(POLL_S)
            if handle.attempt != attempt:  # the target started the run again: its lost attempt is set apart
                attempt, attempts = handle.attempt, attempts + 1
                self._set_apart(ingest, result, attempts - 1)
                self._ingest = ingest = MetricsIngest(self.ws, result.run_id)
            ingest.feed(handle.read_metrics())
            now = time.monotonic()
            if handle.ref != job_ref:  # the target started the job again elsewhere (an SSH retry)
                job_ref = handle.ref
                self.ws.runs.set_job_ref(result.run_id, job_ref)
            where = f"attempt {attempts} on {job_ref['node']}" if job_ref.get("node") else ""
            if where and where != noted:  # the timeline tells where each attempt ran
                noted = where
                self.ws.runs.note(result.run_id, where)
            if code is not None:
                break
            if now >= next_heartbeat:
                next_heartbeat = now + HEARTBEAT_S
                if self.ws.runs.heartbeat(result.run_id):
                    handle.cancel(CANCELED_BY_COMMAND)
            if deadline is not None and now > deadline:
                handle.cancel(f"canceled: ran longer than job.max_run_duration_s={max_s}")
                deadline = None
        while data := handle.read_metrics():
            ingest.feed(data)
        ingest.feed(b"", final=True)
        result.exit_code = code
        result.node = job_ref.get("node")
        reason = handle.cancel_reason or (control.reason if code != 0 else None)
        if reason:
            result.status, result.error = CANCELED, reason
        elif code == 0:
            result.status = COMPLETED
        elif handle.lost_reason:  # the job was lost (its node died...): there is no script exit code
            result.status, result.error, result.exit_code = FAILED, handle.lost_reason, None
        else:
            result.status = FAILED
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            result.error = f"the script failed ({how})"

    def _set_apart(self, ingest: MetricsIngest, result: RunResult, attempt: int) -> None:
        """The metrics of a lost attempt leave the run's series (which the retry logs anew) for the file
        ``logs/attempt-N-metrics.jsonl`` of the run (an artifact): the run's metrics are its last attempt's."""

        run_id = result.run_id
        ingest.feed(b"", final=True)
        records = self.ws.metrics.history(run_id)
        if records:
            logs = result.run_dir / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            with open(logs / f"attempt-{attempt}-metrics.jsonl", "w") as f:
                for record in records:
                    f.write(json.dumps(record, default=str) + "\n")
        self.ws.metrics.replace(run_id, [])
        self.ws.runs.note(run_id, f"attempt {attempt} lost: its {len(records)} metric records set apart")

    def _finalize(self, spec: RunSpec, handle: RunHandle | None, result: RunResult, out: RunOutput) -> None:
        from mltrain.runs.finalize import collect_artifacts

        run_id = result.run_id
        self.ws.runs.set_status(run_id, FINALIZING)
        try:
            if handle is not None:
                self.plan.compute.collect(spec, handle)
        except MltrainError as exc:
            result.problems.append(f"collecting the run's files failed: {exc}")
        if result.status == FAILED and result.exit_code not in (None, 0):
            tail = out.stderr_tail()
            if tail:
                result.error = f"{result.error}; last lines of stderr:\n" + "\n".join(tail)
        collect_artifacts(self.ws, run_id, spec.run_dir, out.log, handle.stored if handle is not None else None)
        self.ws.runs.set_status(
            run_id, result.status, detail=result.error, exit_code=result.exit_code, error=result.error
        )
        result.metrics = self.ws.metrics.summary(run_id)
        if result.status == COMPLETED and self.plan.data.outputs:
            from mltrain.runs.inputs import register_outputs

            stored = handle.stored if handle is not None else None
            made, problems = register_outputs(self.ws, run_id, spec.run_dir, self.plan.data, stored)
            for ref in made:
                out.log(f"output: {ref} (this run's outputs/data folder, now a data version)")
            result.problems.extend(problems)
        if result.status == COMPLETED and not self.defer_models:
            self.finish_models(result)
        self._record_problems(result)

    def finish_models(self, result: RunResult) -> None:
        """Register the completed run's models (config and in-script requests), then deploy if
        configured; what failed is recorded on the run."""
        self._register(result, self._ingest.register_requests if self._ingest else [])
        if result.models and self.cfg.get("deploy") is not None:
            self._deploy(result)
        self._record_problems(result)

    def _record_problems(self, result: RunResult) -> None:
        from mltrain.runs.finalize import record_problems

        new = result.problems[self._problems_recorded :]
        self._problems_recorded = len(result.problems)
        record_problems(self.ws, result.run_id, new)

    def _register(self, result: RunResult, requested: list[dict[str, Any]]) -> None:
        from mltrain.registry.configs import TURN_OFF, register_request

        configured = register_request(self.cfg.get("register"))
        if configured is None and not requested:
            return
        from mltrain.registry.from_run import register_run_model

        run = self.ws.runs.get(result.run_id)
        missing_hint = f"save the model there in the script, or set register.path to where it is saved; {TURN_OFF}"
        for req in ([configured] if configured is not None else []) + list(requested):
            hint = missing_hint if req is configured else None
            try:
                result.models.append(register_run_model(self.ws, run, req, self.plan.env, missing_hint=hint))
            except MltrainError as exc:
                result.problems.append(f"registration of {req.get('name')} failed: {exc}")

    def _deploy(self, result: RunResult) -> None:
        from mltrain.deploy.from_config import deploy_from_config

        try:
            result.endpoint = deploy_from_config(self.ws, self.cfg["deploy"], result.models[0])
        except MltrainError as exc:
            result.problems.append(f"deployment failed: {exc}")


def write_run_info(run_dir: Path, run_id: str, experiment: str, parent_run_id: str | None = None) -> None:
    """Where the in-script API reports: the run's id, experiment and parent, in its run folder."""
    info = run_dir / RUN_INFO_FILE
    info.parent.mkdir(parents=True, exist_ok=True)
    info.write_text(json.dumps({"run_id": run_id, "experiment": experiment, "parent_run_id": parent_run_id}))
