"""Tuning declared in config: seeded random and Bayesian sampling, early termination policies."""

from __future__ import annotations

import json

import pytest
from sweeptools import TUNE, children, sweeps, workspace, x_of


@pytest.mark.parametrize("sampler", ["random", "bayesian"])
def test_seeded_sampling_repeats_the_same_trials(project, mltrain, curve_job, sampler):
    (project / "conf" / "sweep").mkdir()
    (project / "conf" / "sweep" / "tune.yaml").write_text(TUNE)
    for _ in range(2):
        proc = mltrain("-m", *curve_job, "+sweep=tune", f"sweep.sampler={sampler}")
        assert proc.returncode == 0, proc.output
    ws = workspace(project)
    trials = []
    for parent in sweeps(ws):
        kids = children(ws, parent["id"])
        assert len(kids) == 3 and all(k["status"] == "Completed" for k in kids)
        numbered = sorted(kids, key=lambda k: int(ws.runs.tags(k["id"])["mltrain.sweep.trial"]))
        trials.append([x_of(k) for k in numbered])
        assert all(0 <= x <= 1 for x in trials[-1])
        assert json.loads(ws.runs.tags(numbered[0]["id"])["mltrain.sweep.params"])["job.arguments.x"] == trials[-1][0]
    assert len(set(trials[0])) == 3
    assert trials[0] == trials[1]


def test_search_space_error_is_clear(project, mltrain, curve_job):
    (project / "conf" / "sweep").mkdir()
    (project / "conf" / "sweep" / "tune.yaml").write_text(TUNE.replace("uniform(0, 1)", "uniform(1)"))
    proc = mltrain("-m", *curve_job, "+sweep=tune")
    assert proc.returncode == 2, proc.output
    assert "sweep.search_space.job.arguments.x: uniform takes 2 values" in proc.stderr
    assert not (project / ".mltrain" / "runs").exists() or not any((project / ".mltrain" / "runs").iterdir())


@pytest.mark.parametrize(
    "policy",
    [
        ["sweep.early_termination.policy=bandit", "sweep.early_termination.slack_factor=0.1"],
        ["sweep.early_termination.policy=median_stopping"],
        ["sweep.early_termination.policy=truncation_selection", "sweep.early_termination.truncation_percentage=50"],
    ],
    ids=["bandit", "median_stopping", "truncation_selection"],
)
def test_early_termination_stops_the_lagging_child(project, mltrain, curve_job, policy):
    # x=1 reports 1, 2, 3 and completes; then x=0.2 reports 0.2, 0.4, 0.6 and would wait for ever:
    # every policy must stop it (a cap of 120 s would cancel it with another reason).
    hold = project / "hold"
    hold.touch()
    proc = mltrain(
        "-m",
        *curve_job,
        *policy,
        "sweep.max_concurrent_runs=1",
        "+job.arguments.steps=3",
        f"+job.arguments.hold={hold}",
        "+job.arguments.hold_at=0.2",
        "job.max_run_duration_s=120",
        "job.arguments.x=1,0.2",
    )
    assert proc.returncode == 0, proc.output  # a child stopped early is not a failure
    ws = workspace(project)
    parent = sweeps(ws)[0]
    kids = {x_of(k): k for k in children(ws, parent["id"])}
    assert kids[1.0]["status"] == "Completed"
    assert kids[0.2]["status"] == "Canceled" and kids[0.2]["error"] == "early termination"
    assert parent["status"] == "Completed"
    assert "1 stopped early" in proc.stdout


def test_sweeping_hydra_keys_is_refused(project, mltrain, curve_job):
    proc = mltrain("-m", *curve_job, "job.arguments.x=1,2", "hydra.verbose=true,false")
    assert proc.returncode == 2, proc.output
    assert "sweeping over hydra's configuration is not supported" in proc.stderr.lower()


def test_optuna_study_gets_live_values_and_pruned_children():
    from optuna.trial import TrialState

    from mltrain.runs.sweep.policies import EARLY_TERMINATION
    from mltrain.runs.sweep.search import OptunaSource
    from mltrain.runs.sweep.session import TrialOutcome
    from mltrain.runs.sweep.space import Domain

    source = OptunaSource(
        {"job.arguments.x": Domain("uniform", (0.0, 1.0))}, ["+job.arguments.steps=3"], "bayesian", 1, maximize=True
    )
    stopped = TrialOutcome(source.next_request(), 0, "run-a", "Running")
    source.report(stopped, [0.1, 0.2])
    stopped.status, stopped.error = "Canceled", EARLY_TERMINATION
    source.done(stopped)
    finished = TrialOutcome(source.next_request(), 1, "run-b", "Completed", value=0.9)
    assert finished.request.overrides[0] == "+job.arguments.steps=3"
    assert finished.request.label[0].startswith("job.arguments.x=")
    source.done(finished)
    first, second = source.study.trials
    assert first.state == TrialState.PRUNED and first.intermediate_values == {0: 0.1, 1: 0.2}
    assert second.state == TrialState.COMPLETE and second.value == 0.9
