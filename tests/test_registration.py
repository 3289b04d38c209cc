"""Registration from the config: ``register.*`` on any job, ``~register`` to turn a job's off, and a
registration that fails recorded on its (Completed) run."""

from __future__ import annotations

from pathlib import Path

from support import write_script

from mltrain.workspace import Workspace, WorkspaceSettings

OWN_SCRIPT = """
from mltrain import Run
Run.get_context().log("score", 0.5)
print("no model saved")
"""


def test_register_keys_work_on_a_job_that_registers_nothing(mltrain, cli_json):
    proc = mltrain(
        "job=azureml_iris", "environment=system", "register.name=azure-iris", "register.path=outputs/model.joblib"
    )
    assert proc.returncode == 0, proc.output
    model = cli_json("models", "show", "azure-iris:1")
    assert model["run_id"] == cli_json("runs", "list")[0]["id"]
    assert model["framework"] == "ScikitLearn" and model["cpu"] == 1.0  # the typed defaults filled the rest
    added = mltrain("job=azureml_iris", "environment=system", "+register.name=azure-iris-2")
    assert added.returncode == 0, added.output
    assert cli_json("models", "show", "azure-iris-2:1")["format"] == "joblib"


def test_register_keys_without_a_name_are_refused_before_the_run(mltrain, cli_json):
    proc = mltrain("job=azureml_iris", "environment=system", "register.path=outputs/m.joblib")
    assert proc.returncode == 2, proc.output
    assert "register sets register.path but no register.name" in proc.stderr
    assert "register.name=NAME" in proc.stderr
    assert cli_json("runs", "list") == []


def test_a_job_that_registers_is_turned_off_with_tilde_register_as_its_error_says(mltrain, cli_json, project):
    write_script(project / "src", "own.py", OWN_SCRIPT)
    own = ("environment=system", "job.source_dir=src", "job.script=own.py")
    kept = mltrain(*own)  # the bundled iris job's registration is still selected
    assert kept.returncode == 1, kept.output
    assert "has no outputs/model.joblib to register" in kept.stderr
    assert "~register turns the job's registration off" in kept.stderr
    null = mltrain(*own, "register=null")  # not how a config group is dropped: the error says how
    assert null.returncode == 2 and "~register: no registration" in null.stderr
    off = mltrain(*own, "~register")
    assert off.returncode == 0, off.output
    assert cli_json("models", "list") == []


def test_a_failed_registration_is_recorded_on_the_completed_run(mltrain, cli, cli_json, project):
    proc = mltrain("environment=system", "register.path=outputs/nope.joblib")
    assert proc.returncode == 1, proc.output
    run_id = cli_json("runs", "list")[0]["id"]
    shown = cli_json("runs", "show", run_id)
    assert shown["status"] == "Completed" and shown["error"] is None
    [problem] = shown["problems"]
    assert problem.startswith("registration of sklearn-iris failed: run ") and "has no outputs/nope.joblib" in problem
    text = cli("runs", "show", run_id).stdout
    assert "problems:    registration of sklearn-iris failed" in text
    logged = "[mltrain] problem: registration of sklearn-iris failed"
    assert logged in cli("runs", "logs", run_id).stdout
    ws = Workspace(WorkspaceSettings.resolve(str(project / ".mltrain")))
    [log] = [a for a in ws.runs.artifacts(run_id) if a["path"] == "logs/std_log.txt"]
    assert logged in Path(ws.blobs.path(log["sha256"])).read_text()  # the stored log too
