"""One run plan, many trials: what a sweep launcher builds on. Trials of one plan run in threads,
share the environment, snapshot and workspace built once, and are each an isolated recorded run."""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mltrain.compute.local import LocalCompute
from mltrain.config.schema import MLTrainConfig
from mltrain.errors import ConfigError
from mltrain.runs.control import RunControl
from mltrain.runs.plan import RunPlan, plan_key
from mltrain.runs.trial import Trial

SCRIPT = """
import argparse, os, sys
from mltrain import Run
p = argparse.ArgumentParser(); p.add_argument("--C", type=float)
args = p.parse_args()
os.makedirs("outputs", exist_ok=True)
open("outputs/same_name.txt", "w").write(str(args.C))  # every trial writes the same relative file
Run.get_context().log("C", args.C)
print("C is", args.C)
"""


def _config(project: Path) -> dict:
    node = OmegaConf.structured(MLTrainConfig)
    node.workspace.root = str(project / ".mltrain")
    node.workspace.db_url = None
    node.workspace.artifact_root = None
    node.experiment_name = "plan"
    node.environment.build = "system"
    node.job.source_dir = str(project / "src")
    node.job.script = "train.py"
    config = OmegaConf.to_container(node, resolve=True)
    assert isinstance(config, dict)
    return config


def _trial_config(base: dict, c: float) -> dict:
    config = copy.deepcopy(base)
    config["job"]["arguments"] = {"C": c}
    return config


def test_trials_of_one_plan_run_in_threads_as_isolated_runs(project: Path, monkeypatch: pytest.MonkeyPatch):
    (project / "src").mkdir()
    (project / "src" / "train.py").write_text(SCRIPT)
    base = _config(project)
    prepared = []
    original = LocalCompute.prepare

    def counting_prepare(self, *args, **kwargs):
        prepared.append(threading.get_ident())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LocalCompute, "prepare", counting_prepare)
    control = RunControl()  # no signal handlers: trials run off the main thread
    results = {}
    with RunPlan.build(base) as plan:
        snapshots_before = plan.snapshot.id

        def run(c: float) -> None:
            results[c] = Trial(
                plan, _trial_config(base, c), [f"job.arguments.C={c}"], echo=False, control=control
            ).run()

        threads = [threading.Thread(target=run, args=(c,)) for c in (0.1, 1.0, 10.0)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert len(prepared) == 1, "the environment is prepared once per plan"
    assert {r.status for r in results.values()} == {"Completed"}
    assert len({r.run_id for r in results.values()}) == 3
    for c, result in results.items():
        run = plan.ws.runs.get(result.run_id)
        assert run["arguments"] == ["--C", str(c)]
        assert run["overrides"] == [f"job.arguments.C={c}"]
        assert run["snapshot_id"] == snapshots_before
        assert (result.run_dir / "outputs" / "same_name.txt").read_text() == str(c)
        assert plan.ws.metrics.summary(result.run_id) == {"C": c}


def test_a_trial_that_changes_the_environment_needs_its_own_plan(project: Path):
    (project / "src").mkdir()
    (project / "src" / "train.py").write_text(SCRIPT)
    base = _config(project)
    other = copy.deepcopy(base)
    other["environment"]["pip"] = ["scikit-learn"]
    assert plan_key(_trial_config(base, 2.0)) == plan_key(base)
    assert plan_key(other) != plan_key(base)
    with RunPlan.build(base) as plan:
        assert plan.shares(_trial_config(base, 2.0))
        with pytest.raises(ConfigError, match="changes more than its arguments"):
            Trial(plan, other, [])
