"""Scripts that log with MLflow record into their mltrain run: the driver serves MLflow's tracking
API to the job (a real, current mlflow release in the job's environment, autolog included)."""

from __future__ import annotations

from support import write_script

TRAIN = """
import argparse
import mlflow
import mlflow.sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

parser = argparse.ArgumentParser()
parser.add_argument("--C", type=float, default=1.0)
args = parser.parse_args()
mlflow.sklearn.autolog(log_models=False)
x, y = load_iris(return_X_y=True)
with mlflow.start_run():
    model = LogisticRegression(C=args.C, max_iter=500).fit(x, y)
    mlflow.log_param("data", "iris")
    for step in range(3):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metrics({"extra": 1.5})
    mlflow.set_tag("stage", "baseline")
    mlflow.set_tags({"team": "ml"})
    dataset = mlflow.data.from_numpy(x, targets=y, source="https://example.com/iris.csv", name="iris")
    mlflow.log_input(dataset, context="training")
    print("digest:", dataset.digest)
    with open("notes.txt", "w") as f:
        f.write("hello")
    mlflow.log_artifact("notes.txt")
    mlflow.log_artifacts("reports", artifact_path="reports")
    mlflow.sklearn.log_model(model, name="clf", serialization_format="cloudpickle")
    print("tracking:", mlflow.get_tracking_uri().startswith("http://127.0.0.1:"))
"""


def test_mlflow_calls_and_autolog_record_into_the_run(mltrain, cli_json, project):
    write_script(project / "src", "train.py", TRAIN)
    write_script(project / "src" / "reports", "r.md", "# report")
    env = project / "conf" / "environment" / "mlflow.yaml"
    env.parent.mkdir(parents=True)
    env.write_text("name: mlflow\nbuild: venv\npip: [mlflow, scikit-learn]\n")
    proc = mltrain(
        "environment=mlflow",
        "job.source_dir=src",
        "job.script=train.py",
        "job.arguments=[--C,2]",
        "experiment_name=mlf",
        "register.name=iris-mlflow",
        "register.path=outputs/mlflow/clf/model.pkl",
        timeout=900,
    )
    assert proc.returncode == 0, proc.output
    assert "tracking: True" in proc.stdout
    # the summary shows the metrics first, then (some of) the 16 params, then how many more
    line = next(x for x in proc.stdout.splitlines() if x.startswith("  metrics: "))
    shown = [item.split("=")[0] for item in line.removeprefix("  metrics: ").split("  ")[:12]]
    assert {"loss", "extra", "training_accuracy_score"} <= set(shown[:9]) and "data" not in shown[:9]
    assert line.endswith(" more)")
    run = cli_json("runs", "show", cli_json("runs", "list")[0]["id"])
    metrics = run["metrics"]
    assert metrics["C"] == 2.0 and metrics["max_iter"] == 500.0 and metrics["data"] == "iris"  # params
    assert 0.9 < metrics["training_accuracy_score"] <= 1.0  # autolog
    assert metrics["extra"] == 1.5
    loss = cli_json("runs", "metrics", run["id"], "loss")
    assert [(r["step"], r["value"]) for r in loss] == [(0, 1.0), (1, 0.5), (2, 1 / 3)]  # each stored once
    assert run["tags"]["stage"] == "baseline" and run["tags"]["team"] == "ml"
    assert run["tags"]["estimator_name"] == "LogisticRegression"
    paths = {a["path"] for a in run["artifacts"]}
    assert {"outputs/mlflow/notes.txt", "outputs/mlflow/reports/r.md", "outputs/mlflow/clf/MLmodel"} <= paths
    model = cli_json("models", "show", "iris-mlflow:1")
    assert model["run_id"] == run["id"] and model["format"] == "joblib"
    digest = next(x for x in proc.stdout.splitlines() if x.startswith("digest: ")).split()[1]
    mine = {"key": "mlflow:iris (training)", "name": None, "version": None, "uri": "https://example.com/iris.csv"}
    assert {**mine, "digest": digest, "mode": "mlflow"} in run[
        "inputs"
    ]  # mlflow.log_input, through the REST runs/log-inputs route
    assert "mlflow:dataset (train)" in {i["key"] for i in run["inputs"]}  # autolog's own
    assert model["lineage"]["data"] == run["inputs"]
