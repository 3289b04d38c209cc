"""Scripts written for Azure ML (SDK v1) run as-is: ``azureml.core`` is mltrain's stand-in when the
job's environment has no azureml-core, and every call lands in the mltrain run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support import write_script

from mltrain.environments.shim import SHIM_FILES, ensure_shim
from mltrain.runs.compat import azureml_files

EVERY_METHOD = r"""
import json, os
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from azureml.core import Model, Run
from azureml.core.resource_configuration import ResourceConfiguration

run = Run.get_context()
print("ids", json.dumps({"id": run.id, "experiment": run.experiment.name, "parent": run.parent}))
for step, loss in enumerate([0.9, 0.5, 0.2]):
    run.log("loss", loss, step=step)
run.log("accuracy", 0.93, description="test accuracy")
run.log_list("lrs", [0.1, 0.01])
run.log_row("epochs", epoch=1, loss=0.5)
run.log_row("epochs", epoch=2, loss=0.3)
run.log_table("table", {"a": [1, 2], "b": [3, 4]})
run.log_confusion_matrix("cm", {"schema_type": "confusion_matrix", "schema_version": "1.0.0",
    "data": {"class_labels": ["cat", "dog"], "matrix": [[5, 1], [2, 7]]}})
run.log_accuracy_table("acc", json.dumps({"schema_type": "accuracy_table", "data": {
    "class_labels": ["cat"], "probability_thresholds": [0.0, 0.5],
    "probability_tables": [[[6, 8, 0, 0], [5, 1, 7, 1]]], "percentiles": [], "percentile_tables": []}}))
fig = plt.figure()
plt.plot([1, 2, 3])
run.log_image("curve", plot=fig)
os.makedirs("reports/sub", exist_ok=True)
open("reports/summary.md", "w").write("# summary")
open("reports/sub/detail.txt", "w").write("detail")
run.log_image("logo", path="reports/summary.md")
run.tag("stage", "baseline")
run.set_tags({"team": "vision"})
run.add_properties({"owner": "me"})
run.upload_file("notes/summary.md", "reports/summary.md")
run.upload_folder("report", "reports")
print("metrics", json.dumps(run.get_metrics()))
os.makedirs("outputs", exist_ok=True)
open("outputs/model.joblib", "wb").write(b"\x80\x04N.")
model = run.register_model(model_name="azure-model", model_path="outputs/model.joblib",
    model_framework=Model.Framework.SCIKITLEARN, model_framework_version="1.7.2",
    resource_configuration=ResourceConfiguration(cpu=2, memory_in_gb=1.5),
    tags={"area": "test"}, properties={"origin": "azure"}, description="from an Azure script")
print("model", model.name)
try:
    run.log_predictions("p", {})
except NotImplementedError as exc:
    print("unsupported:", exc)
try:
    from azureml.core import Dataset
except ImportError as exc:
    print("unsupported import:", exc)
run.complete()
"""


def _run_id(cli_json) -> str:
    return cli_json("runs", "list")[0]["id"]


def test_azure_tutorial_script_runs_unchanged(mltrain, cli_json):
    proc = mltrain("job=azureml_iris", "job.arguments.kernel=rbf")
    assert proc.returncode == 0, proc.output
    run = cli_json("runs", "show", _run_id(cli_json))
    assert run["metrics"]["Kernel type"] == "rbf"
    assert run["metrics"]["Penalty"] == 1.0
    assert 0.9 < run["metrics"]["Accuracy"] <= 1.0
    assert "outputs/model.joblib" in {a["path"] for a in run["artifacts"]}


def test_every_run_method_records_into_the_run(mltrain, cli_json, project):
    write_script(project / "src", "azure_all.py", EVERY_METHOD)
    proc = mltrain("environment=system", "~register", "job.source_dir=src", "job.script=azure_all.py")
    assert proc.returncode == 0, proc.output
    run = cli_json("runs", "show", _run_id(cli_json))
    out = proc.stdout
    ids = json.loads(out.split("ids ", 1)[1].splitlines()[0])
    assert ids == {"id": run["id"], "experiment": "iris", "parent": None}
    # get_metrics inside the script: repeated scalars as lists, rows as a table
    seen = json.loads(out.split("metrics ", 1)[1].splitlines()[0])
    assert seen["loss"] == [0.9, 0.5, 0.2] and seen["accuracy"] == 0.93
    assert seen["epochs"] == {"epoch": [1, 2], "loss": [0.5, 0.3]}
    metrics = run["metrics"]
    assert metrics["lrs"] == [0.1, 0.01] and metrics["table"] == {"a": [1, 2], "b": [3, 4]}
    assert metrics["cm"] == {"actual": ["cat", "dog"], "cat": [5, 2], "dog": [1, 7]}
    assert metrics["acc"]["threshold"] == [0.0, 0.5] and metrics["acc"]["tp"] == [6, 5]
    assert metrics["curve"] == {"artifact": "images/curve.png"}
    assert metrics["logo"] == {"artifact": "images/summary.md"}
    loss = cli_json("runs", "metrics", run["id"], "loss")
    assert [(r["step"], r["value"]) for r in loss] == [(0, 0.9), (1, 0.5), (2, 0.2)]
    assert run["tags"] == {"stage": "baseline", "team": "vision", "owner": "me"}
    paths = {a["path"] for a in run["artifacts"]}
    assert {"images/curve.png", "notes/summary.md", "report/summary.md", "report/sub/detail.txt"} <= paths
    png = Path(run["run_dir"]) / ".mltrain" / "uploads" / "images" / "curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # registered when the run completed, with Azure's framework and resources
    model = cli_json("models", "show", "azure-model:1")
    assert model["framework"] == "ScikitLearn" and model["framework_version"] == "1.7.2"
    assert model["cpu"] == 2 and model["memory_gb"] == 1.5
    assert model["tags"] == {"area": "test"} and model["description"] == "from an Azure script"
    # what is not supported says so, by name
    assert "unsupported: Run.log_predictions is not supported by mltrain's azureml stand-in" in out
    assert "unsupported import: azureml.core.Dataset is not supported" in out
    assert "run.complete() does nothing" in proc.stderr


def test_azureml_compat_can_be_turned_off(mltrain, project):
    write_script(project / "src", "a.py", "from azureml.core import Run\n")
    args = ("environment=system", "~register", "job.source_dir=src", "job.script=a.py")
    assert mltrain(*args).returncode == 0
    off = mltrain(*args, "job.azureml_compat=false")
    assert off.returncode == 1 and "No module named 'azureml'" in off.stderr


def test_outside_mltrain_the_azure_run_is_offline(project):
    shim = ensure_shim((*SHIM_FILES, *azureml_files()))
    script = write_script(
        project,
        "t.py",
        "from azureml.core.run import Run\nr = Run.get_context()\nr.log('a', 1)\nprint(r.id, r.get_metrics())\n",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIN_")}
    proc = subprocess.run(
        [sys.executable, str(script)], env={**env, "PYTHONPATH": str(shim)}, capture_output=True, text=True, cwd=project
    )
    assert proc.returncode == 0, proc.stderr
    assert "[mltrain offline run] a: 1" in proc.stdout
    assert "OfflineRun {'a': 1}" in proc.stdout
