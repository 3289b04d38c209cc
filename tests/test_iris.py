"""The bundled iris example end to end: `python -m mltrain` trains, streams, stores and registers."""

from __future__ import annotations

import joblib
import numpy as np
from sklearn.datasets import load_iris


def test_default_run_trains_registers_and_summarises(mltrain, cli, cli_json, project):
    proc = mltrain()
    assert proc.returncode == 0, proc.output
    # the script's own output is streamed, then the summary
    assert "accuracy of the SVC on the test set" in proc.stdout
    assert "Completed" in proc.stdout
    assert "sklearn-iris version 1" in proc.stdout

    runs = cli_json("runs", "list")
    assert len(runs) == 1
    run = runs[0]
    assert run["status"] == "Completed"
    assert run["experiment"] == "iris"
    assert run["script"] == "train_iris.py"
    assert run["arguments"] == ["--kernel", "rbf", "--penalty", "1.0"]
    assert run["env_name"] == "sklearn" and len(run["env_hash"]) == 64
    assert run["snapshot_id"] and run["exit_code"] == 0
    assert run["id"] in proc.stdout

    shown = cli_json("runs", "show", run["id"])
    assert [h["status"] for h in shown["history"]] == ["Queued", "Preparing", "Running", "Finalizing", "Completed"]
    assert 0.9 < shown["metrics"]["accuracy"] <= 1.0
    assert shown["metrics"]["kernel"] == "rbf" and shown["metrics"]["penalty"] == 1.0
    paths = {a["path"] for a in shown["artifacts"]}
    assert {"outputs/model.joblib", "logs/std_log.txt"} <= paths
    assert shown["config"]["job"]["arguments"] == {"kernel": "rbf", "penalty": 1.0}

    model = cli_json("models", "show", "sklearn-iris")
    assert model["version"] == 1 and model["run_id"] == run["id"]
    assert model["framework"] == "ScikitLearn" and model["framework_version"] == "1.7.2"
    assert model["cpu"] == 1.0 and model["memory_gb"] == 0.5
    assert model["tags"] == {"dataset": "iris"}
    assert model["lineage"]["metrics"]["accuracy"] == shown["metrics"]["accuracy"]

    # the registered file is the model the run saved, and it predicts
    got = cli("models", "download", "sklearn-iris:1", "--dest", str(project / "dl"))
    assert got.returncode == 0, got.output
    x, y = load_iris(return_X_y=True)
    clf = joblib.load(project / "dl" / "model.joblib")
    assert np.mean(clf.predict(x) == y) > 0.9


def test_second_run_adds_a_version_and_overrides_apply(mltrain, cli_json):
    first = mltrain()
    assert first.returncode == 0, first.output
    second = mltrain("job.arguments.penalty=0.5", "experiment_name=iris-tuning")
    assert second.returncode == 0, second.output
    runs = cli_json("runs", "list", "--experiment", "iris-tuning")
    assert len(runs) == 1
    assert runs[0]["arguments"] == ["--kernel", "rbf", "--penalty", "0.5"]
    assert runs[0]["overrides"] == ["job.arguments.penalty=0.5", "experiment_name=iris-tuning"]
    versions = cli_json("models", "list", "sklearn-iris")
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[0]["run_id"] == runs[0]["id"]
    # the unchanged source folder gives the same snapshot
    all_runs = cli_json("runs", "list")
    assert len({r["snapshot_id"] for r in all_runs}) == 1
