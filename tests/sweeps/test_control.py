"""A running sweep is canceled by Ctrl-C or `mltrain runs cancel`, and an interrupted one resumes."""

from __future__ import annotations

import signal

import pytest
from support import start_mltrain
from sweeptools import TUNE, children, sweeps, wait_for, workspace, x_of


def _held_sweep(project, curve_job, hold):
    """A sweep of x=1,2,3, one child at a time, whose child x=2 waits while ``hold`` exists; returns the
    process and the sweep's id once x=1 completed and x=2 runs."""
    hold.touch()
    proc = start_mltrain(
        project,
        "-m",
        *curve_job,
        "sweep.max_concurrent_runs=1",
        f"+job.arguments.hold={hold}",
        "+job.arguments.hold_at=2",
        "job.arguments.x=1,2,3",
    )
    ws = workspace(project)

    def second_running():
        for parent in sweeps(ws):
            kids = {x_of(k): k["status"] for k in children(ws, parent["id"])}
            if kids.get(1.0) == "Completed" and kids.get(2.0) == "Running":
                return parent["id"]
        return None

    return proc, wait_for(second_running)


def test_ctrl_c_cancels_then_resume_finishes(project, mltrain, curve_job):
    hold = project / "hold"
    proc, sweep_id = _held_sweep(project, curve_job, hold)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    ws = workspace(project)
    assert ws.runs.get(sweep_id)["status"] == "Canceled"
    first = {x_of(k): k["status"] for k in children(ws, sweep_id)}
    assert first == {1.0: "Completed", 2.0: "Canceled"}  # x=3 never started

    hold.unlink()
    again = mltrain(
        "-m",
        *curve_job,
        "sweep.max_concurrent_runs=1",
        f"+job.arguments.hold={hold}",
        "+job.arguments.hold_at=2",
        "job.arguments.x=1,2,3",
        f"sweep.resume={sweep_id}",
    )
    assert again.returncode == 0, again.output
    assert len(sweeps(ws)) == 1  # the same sweep continued
    assert ws.runs.get(sweep_id)["status"] == "Completed"
    kids = children(ws, sweep_id)
    runs = sorted((x_of(k), k["status"]) for k in kids)
    assert runs == [(1.0, "Completed"), (2.0, "Canceled"), (2.0, "Completed"), (3.0, "Completed")]
    numbers = [int(ws.runs.tags(k["id"])["mltrain.sweep.trial"]) for k in kids]
    assert len(set(numbers)) == len(numbers)  # trial numbers (and run folders) do not collide
    assert len({k["run_dir"] for k in kids}) == len(kids)
    assert "Completed (kept)" in again.stdout


def test_resume_by_the_sweep_id_alone_continues_it_with_its_own_overrides(project, mltrain, cli_json, curve_job):
    hold = project / "hold"
    proc, sweep_id = _held_sweep(project, curve_job, hold)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    hold.unlink()
    ws = workspace(project)

    differ = mltrain("-m", *curve_job, "job.arguments.x=1,2,4", f"sweep.resume={sweep_id}")
    assert differ.returncode == 2, differ.output
    assert "not in the sweep: job.arguments.x=1,2,4" in differ.stderr
    assert "missing job.arguments.x=1,2,3" in differ.stderr and "missing +job.arguments.hold_at=2" in differ.stderr
    single = mltrain(f"sweep.resume={sweep_id}")
    assert single.returncode == 2 and "sweeps run with -m" in single.stderr
    assert len(children(ws, sweep_id)) == 2  # nothing ran

    again = mltrain("-m", f"sweep.resume={sweep_id}")
    assert again.returncode == 0, again.output
    assert len(sweeps(ws)) == 1 and ws.runs.get(sweep_id)["status"] == "Completed"
    kids = children(ws, sweep_id)
    assert sorted((x_of(k), k["status"]) for k in kids) == [
        (1.0, "Completed"),
        (2.0, "Canceled"),
        (2.0, "Completed"),
        (3.0, "Completed"),
    ]
    assert {k["script"] for k in kids} == {"curve.py"}  # no run of the default (iris) job
    assert cli_json("models", "list") == []  # and nothing registered


def test_a_resume_keeps_the_record_and_takes_only_how_the_sweep_runs_anew():
    from mltrain.config.resume import merge
    from mltrain.errors import ConfigError

    recorded = ["job=curve", "sweep.max_concurrent_runs=2", "x=1,2", "compute.token=<redacted>"]
    with pytest.raises(ConfigError, match="compute.token on the command line, which is not stored"):
        merge(recorded, ["sweep.max_concurrent_runs=4"], "S")
    given = ["x=1,2", "compute.token=t0k", "job=curve", "sweep.max_concurrent_runs=4"]
    assert merge(recorded, given, "S") == ["x=1,2", "compute.token=t0k", "job=curve", "sweep.max_concurrent_runs=4"]
    assert merge(recorded[:3], ["sweep.fail_fast=true", "hydra.sweep.dir=out"], "S") == [
        "job=curve",
        "x=1,2",
        "sweep.max_concurrent_runs=2",
        "sweep.fail_fast=true",
        "hydra.sweep.dir=out",
    ]
    assert merge(recorded[:3], ["x=1,2", "hydra/launcher=mltrain", "job=curve"], "S")[-1] == "hydra/launcher=mltrain"
    with pytest.raises(ConfigError, match=r"missing compute.token; not in the sweep: x=1,3"):
        merge(recorded, ["x=1,3", "job=curve"], "S")


def test_runs_cancel_stops_the_sweep_and_its_children(project, cli, curve_job):
    proc, sweep_id = _held_sweep(project, curve_job, project / "hold")
    canceled = cli("runs", "cancel", sweep_id)
    assert canceled.returncode == 0, canceled.output
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    ws = workspace(project)
    assert ws.runs.get(sweep_id)["status"] == "Canceled"
    kids = {x_of(k): k for k in children(ws, sweep_id)}
    assert kids[1.0]["status"] == "Completed"  # what finished is kept
    assert kids[2.0]["status"] == "Canceled"
    assert 3.0 not in kids


def test_resumed_random_sweep_continues_the_study(project, mltrain, curve_job):
    (project / "conf" / "sweep").mkdir()
    (project / "conf" / "sweep" / "tune.yaml").write_text(TUNE)  # random, seeded, 3 trials
    hold = project / "hold"
    hold.touch()
    args = [
        "-m",
        *curve_job,
        "+sweep=tune",
        "sweep.max_concurrent_runs=1",
        f"+job.arguments.hold={hold}",
        "+job.arguments.hold_after=1",
    ]
    proc = start_mltrain(project, *args)
    ws = workspace(project)

    def second_running():
        for parent in sweeps(ws):
            kids = [k["status"] for k in children(ws, parent["id"])]
            if kids == ["Completed", "Running"]:
                return parent["id"]
        return None

    sweep_id = wait_for(second_running)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    first = children(ws, sweep_id)
    hold.unlink()
    (project / "conf" / "sweep" / "tune.yaml").write_text(TUNE.replace("seed: 7", "seed: 8"))
    changed = mltrain(*args, f"sweep.resume={sweep_id}")  # its search changed since: refused
    assert changed.returncode == 2 and "sweep.seed was 7, now 8" in changed.stderr, changed.output
    (project / "conf" / "sweep" / "tune.yaml").write_text(TUNE)
    again = mltrain(*args, f"sweep.resume={sweep_id}")
    assert again.returncode == 0, again.output
    kids = children(ws, sweep_id)
    completed = [x_of(k) for k in kids if k["status"] == "Completed"]
    assert len(completed) == 3
    assert [k["id"] for k in kids if x_of(k) == x_of(first[0])] == [first[0]["id"]]  # kept, not run again
    assert x_of(first[1]) in completed  # the interrupted trial ran again with the same parameters
    fresh = mltrain("-m", *curve_job, "+sweep=tune")  # the same study from scratch samples the same trials
    assert fresh.returncode == 0, fresh.output
    new = next(p for p in sweeps(ws) if p["id"] != sweep_id)
    assert sorted(x_of(k) for k in children(ws, new["id"])) == sorted(completed)
