"""The model registry commands: register from a file or a run, aliases, archive, verified loading."""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import joblib
import pytest
from deploytools import run
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mltrain.errors import RegistryError
from mltrain.registry.store import ModelRegistry
from mltrain.workspace import Workspace


@pytest.fixture
def model_file(project: Path) -> Path:
    x, y = load_iris(return_X_y=True)
    path = project / "lr.joblib"
    joblib.dump(LogisticRegression(max_iter=300).fit(x, y), path)
    return path


def test_register_a_plain_file_with_metadata(cli_json, cli, model_file: Path):
    import sklearn

    mv = cli_json(
        "models", "register", "lr", "--path", str(model_file), "--tags", "stage=dev", "team=ml",
        "--properties", "auc=0.9", "--description", "logistic regression", "--cpu", "2", "--memory-gb", "0.75",
    )  # fmt: skip
    assert mv["version"] == 1 and mv["format"] == "joblib" and mv["run_id"] is None
    # nothing is loaded: a joblib file without --framework is ScikitLearn at this interpreter's version
    assert mv["framework"] == "ScikitLearn" and mv["framework_version"] == sklearn.__version__
    assert mv["tags"] == {"stage": "dev", "team": "ml"} and mv["properties"] == {"auc": "0.9"}
    assert mv["cpu"] == 2.0 and mv["memory_gb"] == 0.75 and mv["description"] == "logistic regression"
    second = cli_json("models", "register", "lr", "--path", str(model_file), "--framework", "Custom")
    assert second["version"] == 2 and second["framework"] == "Custom" and second["framework_version"] is None

    wrong = cli("models", "register", "lr", "--path", str(model_file), "--format", "skops")
    assert wrong.returncode != 0 and "is a joblib file, not skops" in wrong.stderr
    bad_tag = cli("models", "register", "lr", "--path", str(model_file), "--tags", "novalue")
    assert bad_tag.returncode != 0 and "KEY=VALUE" in bad_tag.stderr
    missing = cli("models", "register", "lr", "--path", "nowhere.joblib")
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def test_register_from_a_run_keeps_lineage(mltrain, cli_json, cli, project: Path):
    """--run ID --path outputs/...: the run's lineage and its environment's scikit-learn version."""
    assert mltrain().returncode == 0
    run_id = cli_json("runs", "list")[0]["id"]
    mv = cli_json("models", "register", "iris-again", "--run", run_id[:12], "--path", "outputs/model.joblib")
    assert mv["run_id"] == run_id and mv["framework_version"] == "1.7.2" and len(mv["env_hash"]) == 64
    shown = cli_json("models", "show", "iris-again")
    assert shown["lineage"]["run"] == run_id and 0.9 < shown["lineage"]["metrics"]["accuracy"] <= 1.0
    assert shown["lineage"]["environment_hash"] == mv["env_hash"] and shown["lineage"]["snapshot"]

    outside = cli("models", "register", "x", "--run", run_id, "--path", "../../mltrain.db")
    assert outside.returncode != 0 and "outside the run folder" in outside.stderr
    absent = cli("models", "register", "x", "--run", run_id, "--path", "outputs/nothing.joblib")
    assert absent.returncode != 0 and "has no outputs/nothing.joblib" in absent.stderr

    # the run folder is gone: the files collected into the workspace are registered instead
    shutil.rmtree(project / ".mltrain" / "runs" / run_id)
    again = cli_json("models", "register", "iris-again", "--run", run_id, "--path", "outputs/model.joblib")
    assert again["version"] == 2 and again["sha256"] == mv["sha256"]


def test_alias_moves_and_resolves_everywhere(cli_json, cli, model_file: Path):
    for _ in range(3):
        cli_json("models", "register", "lr", "--path", str(model_file))
    assert cli("models", "alias", "lr", "1", "production").returncode == 0
    assert cli_json("models", "show", "lr@production")["version"] == 1
    moved = cli("models", "alias", "lr", "3", "production")
    assert moved.returncode == 0 and "lr@production -> version 3" in moved.stdout
    assert cli_json("models", "show", "lr@production")["version"] == 3
    assert cli_json("models", "show", "lr:1")["aliases"] == []
    missing = cli("models", "show", "lr@staging")
    assert missing.returncode != 0 and "no alias 'staging'" in missing.stderr
    no_version = cli("models", "alias", "lr", "9", "production")
    assert no_version.returncode != 0 and "no model 'lr:9'" in no_version.stderr


def test_archive_hides_a_version_and_restore_brings_it_back(cli_json, cli, model_file: Path):
    for _ in range(2):
        cli_json("models", "register", "lr", "--path", str(model_file))
    assert cli("models", "archive", "lr:2").returncode == 0
    assert [m["version"] for m in cli_json("models", "list", "lr")] == [1]
    assert [m["version"] for m in cli_json("models", "list", "lr", "--all")] == [2, 1]
    assert cli_json("models", "show", "lr")["version"] == 1  # NAME: the latest version not archived
    assert cli_json("models", "show", "lr:2")["archived"] is True
    refused = cli("endpoints", "deploy", "lr:2")
    assert refused.returncode != 0 and "archived" in refused.stderr and "--restore" in refused.stderr
    assert cli("models", "archive", "lr:2", "--restore").returncode == 0
    assert cli_json("models", "show", "lr")["version"] == 2
    no_version = cli("models", "archive", "lr")
    assert no_version.returncode != 0 and "lr:VERSION" in no_version.stderr


CUSTOM = """
import numpy as np

def double(x):
    return np.asarray(x) * 2.0
"""


def test_load_checks_sha256_and_skops_trusts_only_what_it_is_told(project: Path, monkeypatch):
    import skops.io as skops_io
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    (project / "deploy_custom.py").write_text(textwrap.dedent(CUSTOM))
    monkeypatch.syspath_prepend(str(project))
    sys.modules.pop("deploy_custom", None)
    import deploy_custom

    x, y = load_iris(return_X_y=True)
    pipe = make_pipeline(FunctionTransformer(deploy_custom.double), LogisticRegression(max_iter=300)).fit(x, y)
    skops_io.dump(pipe, project / "pipe.skops")
    ws = Workspace.open(str(project / ".mltrain"))
    mv = ModelRegistry.of(ws).register("pipe", project / "pipe.skops")
    assert mv.format == "skops"

    with pytest.raises(RegistryError) as refused:
        ModelRegistry.of(ws).load("pipe")
    assert "not trusted: deploy_custom.double" in str(refused.value)
    assert "trusted=" in (refused.value.hint or "")
    loaded = ModelRegistry.of(ws).load("pipe:1", trusted=["deploy_custom.double"])
    assert (loaded.predict(x) == pipe.predict(x)).all()

    # the stored file no longer matches its sha256: refused, whatever the format
    lr = ModelRegistry.of(ws).register("lr", _dump_lr(project, x, y))
    assert ModelRegistry.of(ws).load("lr").predict(x[:5]).shape == (5,)
    blob = ws.blobs.path(lr.sha256)
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes() + b"tampered")
    with pytest.raises(RegistryError, match="failed verification"):
        ModelRegistry.of(ws).load("lr")


def _dump_lr(folder: Path, x, y) -> Path:
    path = folder / "lr.joblib"
    joblib.dump(LogisticRegression(max_iter=300).fit(x, y), path)
    return path


def test_models_register_help_says_how_the_framework_is_guessed(project: Path):
    res = run(project, "models", "register", "--help")
    assert res.returncode == 0
    assert "ScikitLearn" in res.stdout and "interpreter" in res.stdout
