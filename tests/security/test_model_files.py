"""Model files are untrusted: name and content must agree, pickle-based formats are flagged as code-
executing, the server refuses a file whose content differs from its record, and only scikit-learn
estimators are labelled ScikitLearn."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import joblib
import pytest
from support import write_script

from mltrain.serving.errors import ServingError

MARKER = Path("/tmp/mltrain-issue13-pwned")


class Evil:
    """Unpickling this runs code (creates MARKER)."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def _svc():
    from sklearn.datasets import load_iris
    from sklearn.svm import SVC

    X, y = load_iris(return_X_y=True)
    return SVC().fit(X, y)


@pytest.fixture(autouse=True)
def _no_marker():
    MARKER.unlink(missing_ok=True)
    yield
    assert not MARKER.exists(), "a model file's code ran"


def test_a_pickle_named_skops_is_refused_naming_both_formats(project, cli):
    evil = project / "model.skops"
    evil.write_bytes(pickle.dumps(Evil()))
    proc = cli("models", "register", "evil", "--path", str(evil))
    assert proc.returncode == 2, proc.output
    assert "it is a joblib file, not skops as its name (model.skops) says" in proc.stderr
    assert cli("models", "list").stdout.strip() == "no models"


def test_a_skops_file_named_joblib_and_a_text_file_named_pkl_are_refused(project, cli):
    import skops.io as sio

    sio.dump(_svc(), project / "model.joblib")
    proc = cli("models", "register", "m", "--path", "model.joblib")
    assert proc.returncode == 2 and "it is a skops file, not joblib as its name" in proc.stderr, proc.output
    (project / "notes.pkl").write_text("hello")
    proc = cli("models", "register", "m", "--path", "notes.pkl")
    assert proc.returncode == 2 and "neither a joblib (pickle) nor a skops file" in proc.stderr, proc.output
    joblib.dump(_svc(), project / "ok.joblib")
    proc = cli("models", "register", "m", "--path", "ok.joblib", "--format", "skops")
    assert proc.returncode == 2 and "not skops as --format skops says" in proc.stderr, proc.output


def test_pickle_based_registration_warns_and_show_says_code_executing(project, cli, cli_json):
    import skops.io as sio

    joblib.dump(_svc(), project / "svc.joblib")
    sio.dump(_svc(), project / "svc.skops")
    proc = cli("models", "register", "svc", "--path", "svc.joblib")
    assert proc.returncode == 0, proc.output
    assert "runs code stored in the file" in proc.stderr and "skops" in proc.stderr
    proc = cli("models", "register", "safe", "--path", "svc.skops")
    assert proc.returncode == 0 and "runs code" not in proc.stderr, proc.output
    shown = cli("models", "show", "svc:1").stdout
    assert "joblib (code-executing" in shown
    assert "skops (not code-executing" in cli("models", "show", "safe:1").stdout
    assert cli_json("models", "show", "svc:1")["code_executing"] is True
    assert cli_json("models", "show", "safe:1")["code_executing"] is False


def test_the_server_refuses_a_file_whose_content_differs_from_its_record(tmp_path):
    from mltrain.serving.app import create_app
    from mltrain.serving.model import sha256_file

    evil = tmp_path / "model.bin"
    evil.write_bytes(pickle.dumps(Evil()))
    config = {"model_path": str(evil), "model_sha256": sha256_file(str(evil)), "model_format": "skops"}
    with pytest.raises(ServingError, match="is a joblib file, but its record says skops"):
        create_app(config)
    text = tmp_path / "model.txt"
    text.write_text("not a model")
    config = {"model_path": str(text), "model_sha256": sha256_file(str(text)), "model_format": "joblib"}
    with pytest.raises(ServingError, match="neither a joblib nor a skops file, but its record says joblib"):
        create_app(config)


def test_a_file_that_is_not_an_estimator_is_not_labelled_scikitlearn(project, cli_json, mltrain):
    joblib.dump({"weights": [1, 2, 3]}, project / "dict.joblib")
    joblib.dump(_svc(), project / "svc.joblib")
    assert cli_json("models", "register", "d", "--path", "dict.joblib")["framework"] is None
    assert cli_json("models", "register", "s", "--path", "svc.joblib")["framework"] == "ScikitLearn"
    write_script(
        project / "src",
        "save.py",
        "import os, joblib\nfrom mltrain import Run\nos.makedirs('outputs', exist_ok=True)\n"
        "joblib.dump({'not': 'an estimator'}, 'outputs/model.joblib')\nRun.get_context().register_model('fromrun')\n",
    )
    proc = mltrain("environment=system", "~register", "job.source_dir=src", "job.script=save.py")
    assert proc.returncode == 0, proc.output
    assert "fromrun:1 is a joblib file: loading or deploying it runs code" in proc.stdout  # the run's summary
    assert cli_json("models", "show", "fromrun")["framework"] is None


def test_model_files_in_a_folder_are_checked_too(project, cli):
    folder = project / "bundle"
    folder.mkdir()
    (folder / "model.skops").write_bytes(pickle.dumps({"x": 1}))
    (folder / "README.md").write_text("hello")
    proc = cli("models", "register", "b", "--path", "bundle")
    assert proc.returncode == 2 and "model.skops" in proc.stderr, proc.output
    assert json.loads(cli("models", "list", "--json").stdout) == []
