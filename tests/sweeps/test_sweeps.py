"""Sweeps end to end: a parent run and its children, ranking, failures, registration, isolation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sweeptools import the_sweep, workspace, x_of


def test_grid_sweep_parent_children_and_ranking(project, mltrain, cli, cli_json, curve_job):
    proc = mltrain("-m", *curve_job, "job.arguments.x=1,3,2")
    assert proc.returncode == 0, proc.output
    ws = workspace(project)
    parent, children = the_sweep(ws)
    assert parent["status"] == "Completed"
    assert sorted(x_of(c) for c in children) == [1.0, 2.0, 3.0]
    assert all(c["status"] == "Completed" and c["parent_run_id"] == parent["id"] for c in children)
    for child in children:  # every child recorded its own metric and outputs
        assert ws.metrics.summary(child["id"])["score"] == x_of(child)
        assert Path(child["run_dir"], "outputs", "x.txt").read_text() == str(x_of(child))
    best = next(c for c in children if x_of(c) == 3.0)
    assert ws.runs.tags(parent["id"])["mltrain.sweep.best_run"] == best["id"]
    # the final table is sorted by the primary metric, best first
    table = proc.stdout[proc.stdout.index("Sweep " + parent["id"]) :]
    assert table.index("job.arguments.x=3") < table.index("job.arguments.x=2")
    assert table.index("job.arguments.x=2") < table.index("job.arguments.x=1")
    shown = cli_json("runs", "show", parent["id"])
    assert [c["value"] for c in shown["children"]] == [3.0, 2.0, 1.0]
    listed = {r["id"] for r in cli_json("runs", "list")}
    assert parent["id"] in listed and all(c["id"] in listed for c in children)


def test_failed_child_reported_others_go_on(project, mltrain, curve_job):
    proc = mltrain("-m", *curve_job, "+job.arguments.fail_at=2", "job.arguments.x=1,2,3")
    assert proc.returncode == 1, proc.output
    parent, children = the_sweep(workspace(project))
    status = {x_of(c): c["status"] for c in children}
    assert status == {1.0: "Completed", 2.0: "Failed", 3.0: "Completed"}
    assert parent["status"] == "Failed"
    assert "failed: the script failed (exit code 3)" in proc.stdout


def test_fail_fast_stops_the_sweep(project, mltrain, curve_job):
    proc = mltrain(
        "-m",
        *curve_job,
        "sweep.max_concurrent_runs=1",
        "sweep.fail_fast=true",
        "+job.arguments.fail_at=1",
        "job.arguments.x=1,2,3",
    )
    assert proc.returncode == 1, proc.output
    parent, children = the_sweep(workspace(project))
    assert [(x_of(c), c["status"]) for c in children] == [(1.0, "Failed")]
    assert parent["status"] == "Failed"
    assert "fail_fast" in proc.stdout


def test_best_child_model_registered_with_sweep_lineage(project, mltrain, cli_json):
    proc = mltrain("-m", "environment=system", "experiment_name=iris-sweep", "job.arguments.penalty=0.01,1")
    assert proc.returncode == 0, proc.output
    ws = workspace(project)
    parent, children = the_sweep(ws)
    versions = cli_json("models", "list", "sklearn-iris", "--all")
    assert len(versions) == 1, versions  # register: best -> one version, not one per child
    model = cli_json("models", "show", "sklearn-iris")
    best = ws.runs.tags(parent["id"])["mltrain.sweep.best_run"]
    assert model["run_id"] == best
    assert ws.runs.get(best)["parent_run_id"] == parent["id"]
    assert model["tags"]["sweep"] == parent["id"]


ISOLATION = """
import json, os, sys
import isolation_probe  # a module of the job's folder, imported in every trial
with open("shared.txt", "a") as f:  # the same relative file in every trial
    f.write(sys.argv[-1])
leaked = [name for name in ("MARK",) if hasattr(json, name)] + [k for k in os.environ if k == "TRIAL_MARK"]
print("leaked:", leaked, "probe:", isolation_probe.COUNT)
json.MARK = sys.argv[-1]  # a global of a module the warm interpreter had imported
os.environ["TRIAL_MARK"] = "1"
isolation_probe.COUNT += 1
os.makedirs("outputs", exist_ok=True)
with open("outputs/state.json", "w") as f:
    json.dump({"shared": open("shared.txt").read(), "leaked": leaked, "probe": isolation_probe.COUNT,
               "cwd": os.getcwd(), "ppid": os.getppid()}, f)
os.chdir("/")
sys.exit(int(sys.argv[-1]) % 2 * 5)  # odd trials exit 5
"""


@pytest.mark.parametrize("prewarm", [True, False])
def test_trials_are_isolated(project, mltrain, prewarm):
    (project / "src").mkdir()
    (project / "src" / "iso.py").write_text(ISOLATION)
    (project / "src" / "isolation_probe.py").write_text("COUNT = 0\n")
    (project / "conf" / "job").mkdir(parents=True)
    (project / "conf" / "job" / "iso.yaml").write_text("name: iso\nsource_dir: src\nscript: iso.py\n")
    proc = mltrain(
        "-m",
        "environment=system",
        "job=iso",
        "sweep.max_concurrent_runs=1",
        "sweep.prewarm_modules=[json,isolation_probe]",
        "job.args=[1],[2],[3]",
        f"sweep.prewarm={str(prewarm).lower()}",
    )
    assert proc.returncode == 1, proc.output  # the odd trials failed
    parent, children = the_sweep(workspace(project))
    assert [c["status"] for c in children] == ["Failed", "Completed", "Failed"]
    assert [c["exit_code"] for c in children] == [5, 0, 5]
    for child in children:
        state = json.loads(Path(child["run_dir"], "outputs", "state.json").read_text())
        n = child["arguments"][-1]
        ppid = state.pop("ppid")
        assert state == {"shared": n, "leaked": [], "probe": 1, "cwd": child["run_dir"]}
        # forked by a warm server (prewarm), or started by the driver itself
        assert (ppid != child["driver_pid"]) == prewarm


def test_progress_is_redrawn_in_place_on_a_terminal(project, curve_job):
    import os
    import subprocess
    import sys

    main, child = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mltrain", "-m", *curve_job, "job.arguments.x=1,2"],
        cwd=project,
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(timeout=300) == 0
    text = b"".join(chunks).decode(errors="replace")
    assert "\x1b[" in text  # lines moved over and redrawn
    assert "[sweep] #0 job.arguments.x=1: Running" not in text  # no plain line per change
    assert re.search(r"#1 +\S+ +Completed +2 +job\.arguments\.x=2", text)


def test_max_duration_ends_the_sweep(project, mltrain, curve_job):
    hold = project / "hold"
    hold.touch()
    proc = mltrain(
        "-m",
        *curve_job,
        "sweep.max_concurrent_runs=1",
        "sweep.max_duration_s=2",
        f"+job.arguments.hold={hold}",
        "job.arguments.x=1,2",
    )
    assert proc.returncode == 0, proc.output  # a time budget that ran out is not a failure
    parent, children = the_sweep(workspace(project))
    assert [(x_of(c), c["status"]) for c in children] == [(1.0, "Canceled")]  # x=2 never started
    assert "max_duration_s=2" in children[0]["error"]
    assert parent["status"] == "Completed"


def test_a_sweep_that_cannot_be_composed_is_a_config_error(project, mltrain, curve_job):
    proc = mltrain("-m", *curve_job, "job.arguments.x=1,2", "job.snapshot.max_files=many,2")
    assert proc.returncode == 2, proc.output
    assert "job.snapshot.max_files" in proc.stderr
    assert not (project / ".mltrain").exists()  # nothing recorded: the new workspace is not left behind


def test_a_sweep_whose_first_trial_cannot_compose_records_nothing(project, mltrain):
    ws = workspace(project)  # a workspace that exists
    proc = mltrain("-m", "environment=system", "job.arguments.C=0.1,1")  # the iris job has no argument C
    assert proc.returncode == 2, proc.output
    assert "cannot compose the trial environment=system job.arguments.C=0.1" in proc.stderr
    assert "Could not override 'job.arguments.C'" in proc.stderr and "+job.arguments.C=0.1" in proc.stderr
    assert ws.runs.list(limit=None) == []  # no sweep run, as a single run with a bad config records none


INTERPRETER = """
import os, signal, sys
assert sys.path[0] == os.path.dirname(os.path.abspath(__file__)) == os.getcwd(), (sys.path[:2], __file__)
assert os.path.isabs(__file__) and sys.argv[0] == "interp.py", (__file__, sys.argv)
assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
from mltrain import Run  # the in-script API was not imported by the warm interpreter: found on PYTHONPATH
Run.get_context().log("ok", 1)
"""


def test_forked_child_starts_as_the_interpreter_would(project, mltrain):
    (project / "src").mkdir()
    (project / "src" / "interp.py").write_text(INTERPRETER)
    (project / "conf" / "job").mkdir(parents=True)
    (project / "conf" / "job" / "interp.yaml").write_text("name: interp\nsource_dir: src\nscript: interp.py\n")
    proc = mltrain("-m", "job=interp", "sweep.prewarm_modules=[json]", "sweep.primary_metric.name=ok", "job.args=[],[]")
    assert proc.returncode == 0, proc.output
    parent, children = the_sweep(workspace(project))
    assert [c["status"] for c in children] == ["Completed", "Completed"]


ORDER = """
import argparse, time
p = argparse.ArgumentParser()
p.add_argument("--x")
p.add_argument("--log")
a = p.parse_known_args()[0]
with open(a.log, "a") as f:
    f.write(f"start {a.x}\\n")
time.sleep(0.3)
with open(a.log, "a") as f:
    f.write(f"end {a.x}\\n")
"""


def test_children_start_in_order_and_no_more_run_at_once_than_allowed(project, mltrain, curve_job):
    """The next child is recorded and prepared while one runs, but its script starts only once that
    one's ended (sweep.max_concurrent_runs), in the sweep's order."""
    log = project / "order.log"
    (project / "src" / "order.py").write_text(ORDER)
    proc = mltrain(
        "-m",
        *curve_job,
        "job.script=order.py",
        "sweep.max_concurrent_runs=1",
        f"+job.arguments.log={log}",
        "job.arguments.x=1,2,3,4",
    )
    assert proc.returncode == 0, proc.output
    assert log.read_text().split("\n")[:-1] == [f"{e} {x}" for x in range(1, 5) for e in ("start", "end")]
    _, children = the_sweep(workspace(project))
    assert sorted(x_of(c) for c in children if c["status"] == "Completed") == [1.0, 2.0, 3.0, 4.0]


PROJECT_TRAIN = """
import sys
print("warm before the project's imports:", "sklearn" in sys.modules, flush=True)
from task import train
train()
"""
PROJECT_TASK = """
from helpers.fit import fit  # a local package: followed too
def train():
    import sklearn.linear_model  # inside a function: still found by the scan
    print("trained", fit(), flush=True)
"""


def test_prewarm_follows_the_projects_own_modules(project, mltrain):
    """train.py imports scikit-learn only through task.py: the warm server imported it anyway."""
    src = project / "src"
    (src / "helpers").mkdir(parents=True)
    (src / "train.py").write_text(PROJECT_TRAIN)
    (src / "task.py").write_text(PROJECT_TASK)
    (src / "helpers" / "__init__.py").write_text("")
    (src / "helpers" / "fit.py").write_text("from .numbers import one\nimport numpy\ndef fit():\n    return one()\n")
    (src / "helpers" / "numbers.py").write_text("import json\ndef one():\n    return 1\n")
    proc = mltrain(
        "-m", "environment=system", "~register", "job.source_dir=src", "job.script=train.py", "+job.args=[a],[b]"
    )
    assert proc.returncode == 0, proc.output
    _, children = the_sweep(workspace(project))
    for child in children:
        log = Path(child["run_dir"], "logs", "std_log.txt").read_text()
        assert "warm before the project's imports: True" in log and "trained 1" in log, log


def test_import_scan_reads_the_projects_modules_without_running_them(tmp_path):
    from mltrain.remote.imports import script_imports

    (tmp_path / "pkg").mkdir()
    (tmp_path / "train.py").write_text("import os\nfrom task import train\nfrom pkg import sub\n")
    (tmp_path / "task.py").write_text("raise SystemExit('never run')\nimport sklearn.svm\nfrom task import train\n")
    (tmp_path / "pkg" / "__init__.py").write_text("from . import other\n")
    (tmp_path / "pkg" / "sub.py").write_text("from .other import thing\nimport numpy as np\n")
    (tmp_path / "pkg" / "other.py").write_text("from pandas import DataFrame\n")
    found = script_imports(tmp_path, "train.py")
    assert {"os", "sklearn.svm", "numpy", "pandas", "pandas.DataFrame"} <= set(found)
    assert not {"task", "pkg", "pkg.sub", "pkg.other", "task.train"} & set(found)  # local: never imported ahead
