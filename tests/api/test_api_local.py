"""The Python API on local compute, in this process as a notebook uses it: ``mltrain.submit`` composes
exactly what the command line composes, records the run and returns while a detached driver runs it;
the handle waits (with the output), reads metrics with their steps, downloads outputs, registers the
model; ``mltrain.Workspace()`` reads what ``mltrain runs list`` reads, as records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from support import wait_dead, write_script

import mltrain
from mltrain.errors import ConfigError, NotFoundError

TRAIN = """
import os, sys, time
from mltrain import Run
run = Run.get_context()
lr = float(sys.argv[sys.argv.index("--lr") + 1])
for step in range(3):
    run.log("loss", round(1.0 / (step + 1) * lr, 6), step=step)
    print(f"epoch {step}", flush=True)
run.log("accuracy", 0.5 + lr / 10)
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.joblib", "wb") as f:
    f.write(b"\\x80\\x04N.")
with open("outputs/notes.txt", "w") as f:
    f.write("notes")
"""


def job(*extra: str) -> tuple[str, ...]:
    return ("environment=system", "~register", "job.source_dir=src", "job.script=train.py", "job.arguments=null",
            "job.arguments={lr:1}", *extra)  # fmt: skip


@pytest.fixture
def src(project):
    write_script(project / "src", "train.py", TRAIN)
    return project / "src"


def test_submit_returns_a_detached_run_that_wait_follows_with_its_output(src, project, capsys, tmp_path):
    run = mltrain.submit(*job("experiment_name=api"))
    assert run.record.experiment == "api" and run.record.status in ("Queued", "Preparing", "Running", "Completed")
    assert run.wait(show_output=True) == "Completed"
    out = capsys.readouterr().out
    assert "epoch 0" in out and "epoch 2" in out and f"run {run.id} Completed" in out
    assert run.exit_code == 0 and run.record["status"] == "Completed"  # records read as the stores' rows do
    assert [(p.step, p.value) for p in run.metrics("loss")] == [(0, 1.0), (1, 0.5), (2, 0.333333)]
    assert run.record.metrics["accuracy"] == 0.6
    assert run.metrics()["accuracy"][0].value == 0.6
    # the same record the command line shows
    listed = subprocess.run(
        [sys.executable, "-m", "mltrain.cli.main", "runs", "show", run.id, "--json"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    shown = json.loads(listed.stdout)
    assert shown["status"] == "Completed" and shown["tags"]["mltrain.detached"] == "true"
    assert shown["arguments"] == ["--lr", "1"]
    # outputs, verified, into a folder; the model registered with lineage to the run
    folder = run.outputs(tmp_path / "got")
    assert (folder / "outputs" / "notes.txt").read_text() == "notes"
    model = run.register_model("api-model", tags={"from": "api"}, cpu=2)
    assert (model.name, model.version, model.run_id, model.cpu) == ("api-model", 1, run.id, 2)
    assert [m.ref for m in run.models] == ["api-model:1"]


def test_workspace_lists_runs_models_and_environments_as_records(src):
    runs = [mltrain.submit(*job(f"job.arguments.lr={lr}", f"+job.env_vars.N={lr}")) for lr in (1, 3)]
    for run in runs:
        assert run.wait() == "Completed"
    runs[1].set_tags({"stage": "best"})
    ws = mltrain.Workspace()
    assert [r.id for r in ws.runs()] == [runs[1].id, runs[0].id]
    assert [r.id for r in ws.runs(where="accuracy>0.7")] == [runs[1].id]
    assert [r.id for r in ws.runs(sort="accuracy", ascending=True)] == [runs[0].id, runs[1].id]
    assert [r.id for r in ws.runs(tags={"stage": "best"})] == [runs[1].id]
    frame = ws.runs().to_pandas()
    assert list(frame["id"]) == [runs[1].id, runs[0].id] and set(frame["status"]) == {"Completed"}
    assert ws.runs()[0].to_dict()["metrics"]["accuracy"] == 0.8
    runs[0].register_model("m")
    assert [m.ref for m in ws.models()] == ["m:1"] and ws.model("m").run_id == runs[0].id
    (env,) = ws.environments()
    assert env.name == "system" and env.builder == "system"
    assert ws.run(runs[0].id[:20]).id == runs[0].id  # a unique prefix
    with pytest.raises(NotFoundError, match="no run 'nope'"):
        ws.run("nope")


def test_a_config_error_is_raised_before_anything_is_recorded(src, project):
    with pytest.raises(ConfigError, match="Valid keys under job: ") as typo:
        mltrain.submit(*job("job.argumentz=2"))
    assert "Could not override 'job.argumentz'" in str(typo.value)
    with pytest.raises(ConfigError, match="job.script 'missing.py' not found"):
        mltrain.submit(*job("job.script=missing.py"))
    with pytest.raises(ConfigError, match="options are not overrides"):
        mltrain.submit("--cfg", "job")
    assert not (project / ".mltrain" / "runs").exists() or not list((project / ".mltrain" / "runs").iterdir())
    assert mltrain.Workspace().runs() == []


def _processes_writing_into(folder: Path) -> list[str]:
    """The pids of processes whose standard output is a file in ``folder`` (removed or not)."""
    found = []
    for out in Path("/proc").glob("[0-9]*/fd/1"):
        try:
            if os.readlink(out).startswith(f"{folder}/"):
                found.append(out.parent.parent.name)
        except OSError:
            pass  # it ended meanwhile, or is not ours to read
    return found


def test_a_submit_that_fails_leaves_no_driver_behind(src, monkeypatch, tmp_path):
    """``submit`` starts the run's driver before composing the config (its start-up overlaps composing):
    when the config fails, that driver exits and its pending log is removed."""
    pending = tmp_path / "tmp"
    pending.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(pending))
    with pytest.raises(ConfigError, match="job.script 'missing.py' not found"):
        mltrain.submit(*job("job.script=missing.py"))
    deadline = time.monotonic() + 30
    while (list(pending.iterdir()) or _processes_writing_into(pending)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(pending.iterdir()) == [] and _processes_writing_into(pending) == []


def test_the_drivers_output_from_its_start_up_on_is_in_the_run_folder(src, monkeypatch):
    """What the driver prints while it starts up, before it has its run, comes first in the run's
    driver log, its summary after it."""
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # the driver's interpreter prints its imports
    run = mltrain.submit(*job())
    monkeypatch.delenv("PYTHONPROFILEIMPORTTIME")
    assert run.wait() == "Completed" and wait_dead(run.record["driver_pid"])  # its summary printed
    log = (Path(run.record["run_dir"]) / "logs" / "driver.log").read_text()
    assert log.index("| mltrain.runs.driver") < log.index(f"Run {run.id}")


def test_the_project_conf_and_config_dir_are_used(project):
    write_script(project / "code", "hello.py", "print('hello from', __file__.rsplit('/', 2)[-2])\n")
    other = project / "elsewhere"
    (other / "job").mkdir(parents=True)
    (other / "job" / "hello.yaml").write_text("name: hello\nsource_dir: code\nscript: hello.py\n")
    run = mltrain.submit("job=hello", "environment=system", config_dir=other)
    assert run.wait() == "Completed" and run.record.experiment == "hello"
    assert "hello from" in "".join(run.stream())


def test_cancel_stops_a_detached_run(project):
    write_script(project / "src", "slow.py", "import time\nprint('started', flush=True)\ntime.sleep(120)\n")
    run = mltrain.submit("environment=system", "~register", "job.source_dir=src", "job.script=slow.py")
    for text in run.stream():
        if "started" in text:
            break
    assert run.cancel() == "Canceled"
    assert run.exit_code == 130 and "mltrain runs cancel" in run.record.error


def test_a_sweep_has_children_and_a_best_run(src):
    sweep = mltrain.sweep(*job("job.arguments.lr=1,2,4", "sweep.primary_metric.name=accuracy"))
    assert isinstance(sweep, mltrain.api.Sweep)
    assert sweep.wait() == "Completed"
    assert sorted(c.record.arguments[1] for c in sweep.children) == ["1", "2", "4"]
    assert sweep.best is not None and sweep.best.record.metrics["accuracy"] == 0.9
    assert mltrain.Workspace().run(sweep.id).best.id == sweep.best.id


def test_a_sweep_that_does_not_compose_is_an_error(src):
    with pytest.raises(ConfigError, match="job.argumentz"):
        mltrain.sweep(*job("job.argumentz=1", "job.arguments.lr=1,2"))


def test_in_a_jobs_copy_the_python_api_says_it_needs_mltrain(tmp_path):
    """A job's environment has the in-script API only: the API's names fail with a clear error there."""
    from mltrain.environments.shim import SHIM_FILES, ensure_shim
    from mltrain.runs.compat import azureml_files

    shim = ensure_shim((*SHIM_FILES, *azureml_files()))
    code = (
        "import mltrain\n"
        "assert mltrain.Run.get_context().id\n"
        "for name in ('submit', 'Workspace'):\n"
        "    try:\n        getattr(mltrain, name)\n    except ImportError as exc:\n        print(exc)\n"
        "from azureml.core import Workspace\n"
        "try:\n    Workspace.from_config()\nexcept ImportError as exc:\n    print(exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code], env={"PYTHONPATH": str(shim)}, cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "mltrain.submit is mltrain's Python API, which needs mltrain installed" in proc.stdout
    assert "mltrain.Workspace is mltrain's Python API" in proc.stdout
    assert "Workspace needs mltrain installed where it is called" in proc.stdout


def test_interrupting_a_waiting_submit_cancels_the_run(project):
    """``submit(wait=True)`` ties the run to the call: an interrupt of the wait cancels it (a plain
    ``run.wait()`` only stops waiting)."""
    import signal
    import threading
    import time

    write_script(project / "src", "slow.py", "import time\nprint('up', flush=True)\ntime.sleep(120)\n")
    args = ("environment=system", "~register", "job.source_dir=src", "job.script=slow.py")
    main = threading.main_thread().ident

    def interrupt_once_running() -> None:  # as a notebook's interrupt arrives while the cell waits
        ws = mltrain.Workspace(project / ".mltrain")
        while not any("up" in "".join(r.stream(follow=False)) for r in map(ws.run, [x.id for x in ws.runs()])):
            time.sleep(0.1)
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=interrupt_once_running, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        mltrain.submit(*args, wait=True, show_output=False)
    (run,) = mltrain.Workspace().runs()
    assert run.status == "Canceled" and "mltrain runs cancel" in run.error
