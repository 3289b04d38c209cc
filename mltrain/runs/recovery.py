"""Recovery of orphaned runs: a run whose driver died (killed, machine rebooted) is marked Failed
("driver lost") by the next mltrain command that calls ``recover_orphans``; its job is stopped
through the compute target that started it (from the stored job reference: a local process group,
a container, a remote job) and everything its folder holds is stored."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.compute.base import JobRef, NullSink, RunSpec
from mltrain.remote.procs import hostname, is_alive
from mltrain.runs.salvage import salvage_orphan
from mltrain.text import print_error
from mltrain.workspace.runs import FAILED

if TYPE_CHECKING:
    from mltrain.compute.base import ComputeTarget
    from mltrain.workspace import Workspace

DRIVER_LOST = "driver lost: the mltrain process that ran this run ended without finishing it"


def job_ref_of(run: dict[str, Any]) -> JobRef | None:
    """The run's job reference; runs recorded before references existed had a local process group."""
    if run.get("job_ref"):
        return dict(run["job_ref"])
    if run.get("child_pid"):
        return {"kind": "local", "host": run["driver_host"], "pgid": run["child_pid"], "start": run["child_start"]}
    return None


def compute_of(run: dict[str, Any]) -> ComputeTarget:
    """The compute target that ran ``run``, rebuilt from its recorded config."""
    from mltrain.compute.targets import compute_from_config

    return compute_from_config((run.get("config") or {}).get("compute"))


def spec_of(run: dict[str, Any]) -> RunSpec:
    """Enough of the run's spec to attach to, stop and collect its job."""
    return RunSpec(
        run_id=run["id"],
        experiment=str(run.get("experiment") or ""),
        run_dir=Path(run["run_dir"] or "."),
        snapshot_id=run.get("snapshot_id") or "",
        script=run.get("script") or "",
        arguments=list(run.get("arguments") or []),
    )


def stop_job(ws: Workspace, run: dict[str, Any], reason: str) -> list[str]:
    """Stop the job of ``run`` through its target and bring its files back into the run folder (files its
    node uploaded into the workspace's blob store itself are recorded as its artifacts); returns the
    problems met (a target that cannot be reached, files that could not be collected), never raises for them."""
    from mltrain.errors import MltrainError

    ref = job_ref_of(run)
    if ref is None:
        return []
    try:
        compute = compute_of(run)
    except MltrainError as exc:
        return [f"could not stop its job: {exc}"]
    spec = spec_of(run)
    problems = []
    try:
        handle = compute.attach(ref, spec, NullSink(), blobs=ws.blobs)
        compute.stop(ref)
    except MltrainError as exc:
        compute.close()
        return [f"could not stop its job: {exc}"]
    try:
        if handle is not None:
            handle.cancel_reason = reason
            handle.wait(30)
            compute.collect(spec, handle)
    except MltrainError as exc:
        problems.append(f"its job's files could not be collected: {exc}")
    try:
        if handle is not None and handle.stored:
            ws.runs.add_artifacts(run["id"], [(path, sha, size) for path, (sha, size) in handle.stored.items()])
        compute.cleanup(spec, handle)
    except MltrainError as exc:
        problems.append(f"its job could not be cleaned up: {exc}")
    finally:
        compute.close()
    return problems


def recover_orphans(ws: Workspace) -> list[str]:
    """Mark every orphaned run Failed, stop its job through its target, store its folder; return
    their ids. A run that cannot be recovered fully keeps the reason in its error; the others go on."""
    recovered = []
    for run in ws.runs.orphans(hostname(), is_alive):
        if not ws.runs.set_status(run["id"], FAILED, detail="driver lost", error=DRIVER_LOST):
            continue  # finished or recovered by another process meanwhile
        recovered.append(run["id"])
        try:
            problems = stop_job(ws, run, DRIVER_LOST)
        except Exception as exc:  # noqa: BLE001 - one damaged record must not stop the others
            problems = [f"its job could not be stopped: {type(exc).__name__}: {exc}"]
        if problems:
            ws.runs.add_problems(run["id"], problems)
        salvage_orphan(ws, run, hostname())
        if problems:
            print_error("; ".join(problems), f"mltrain: run {run['id']} (driver lost): ")
    return recovered
