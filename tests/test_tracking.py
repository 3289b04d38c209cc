"""Metrics under load, the in-script API inside and outside a run, model versions under concurrency,
schema upgrades."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, select
from support import start_mltrain, wait_all_ok, write_script

from mltrain.workspace import Workspace, tables
from mltrain.workspace import migrations as mig

SYSTEM = ["environment=system", "~register", "job.source_dir=src"]

TEN_THOUSAND = """
import sys
from mltrain import Run
run = Run.get_context()
tag = sys.argv[-1]
for i in range(10_000):
    run.log("value", i, step=i)
run.log_list("labels", ["a", "b", tag])
run.log_row("table", epoch=1, loss=0.5)
run.log_row("table", epoch=2, loss=0.25)
run.log_table("whole", {"x": [1, 2], "y": [3, 4]})
run.set_tags({"worker": tag})
run.log("name", "text value")
"""


def test_eight_parallel_runs_of_10000_metrics_lose_nothing(project, cli_json):
    write_script(project / "src", "many.py", TEN_THOUSAND)
    wait_all_ok([start_mltrain(project, *SYSTEM, "job.script=many.py", f"job.args=[w{i}]") for i in range(8)])
    ws = Workspace.open(str(project / ".mltrain"))
    runs = ws.runs.list()
    assert len(runs) == 8 and all(r["status"] == "Completed" for r in runs)
    seen_tags = set()
    for run in runs:
        values = [m for m in ws.metrics.history(run["id"], "value")]
        assert [m["value"] for m in values] == [float(i) for i in range(10_000)]
        assert [m["step"] for m in values] == list(range(10_000))
        summary = ws.metrics.summary(run["id"])
        tag = ws.runs.tags(run["id"])["worker"]
        seen_tags.add(tag)
        assert summary["labels"] == ["a", "b", tag]
        assert summary["table"] == {"epoch": [1, 2], "loss": [0.5, 0.25]}
        assert summary["whole"] == {"x": [1, 2], "y": [3, 4]}
        assert summary["name"] == "text value"
    assert seen_tags == {f"w{i}" for i in range(8)}


def test_metrics_are_stored_while_the_job_runs(project):
    write_script(
        project / "src",
        "live.py",
        "import time\nfrom mltrain import Run\nrun = Run.get_context()\n"
        "run.log('early', 1)\nrun.flush()\nprint('LOGGED', flush=True)\ntime.sleep(30)\n",
    )
    proc = start_mltrain(project, *SYSTEM, "job.script=live.py")
    try:
        assert proc.stdout is not None
        while "LOGGED" not in proc.stdout.readline():
            pass
        ws = Workspace.open(str(project / ".mltrain"))
        run = ws.runs.list()[0]
        for _ in range(100):  # ingested within the driver's poll interval
            if ws.metrics.summary(run["id"]):
                break
            import time

            time.sleep(0.1)
        assert run["status"] == "Running"
        assert ws.metrics.summary(run["id"]) == {"early": 1.0}
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def test_offline_run_prints_and_never_raises(tmp_path):
    script = write_script(
        tmp_path,
        "offline.py",
        "from mltrain import Run\nrun = Run.get_context()\n"
        "run.log('acc', 0.5)\nrun.log_list('l', [1, 2])\nrun.log_row('t', a=1)\n"
        "run.upload_file('x', 'missing-file')\nrun.register_model('m', 'outputs/m.joblib')\n"
        "print('offline', run.is_offline, run.id)\n",
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MLTRAIN_RUN")}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "acc: 0.5" in proc.stdout and "offline True OfflineRun" in proc.stdout


def test_in_script_registration_happens_only_after_completion(mltrain, cli_json, project):
    body = (
        "import os, sys, joblib\nfrom sklearn.dummy import DummyClassifier\nfrom mltrain import Run\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "joblib.dump(DummyClassifier().fit([[0], [1]], [0, 1]), 'outputs/dummy.joblib')\n"
        "Run.get_context().register_model('dummy', 'outputs/dummy.joblib', tags={'by': 'script'})\n"
        "sys.exit(int(sys.argv[-1]))\n"
    )
    write_script(project / "src", "reg.py", body)
    failed = mltrain(*SYSTEM, "job.script=reg.py", "job.args=[1]")
    assert failed.returncode == 1
    assert cli_json("models", "list") == []
    ok = mltrain(*SYSTEM, "job.script=reg.py", "job.args=[0]")
    assert ok.returncode == 0, ok.output
    model = cli_json("models", "show", "dummy")
    assert model["version"] == 1 and model["tags"] == {"by": "script"} and model["framework"] == "ScikitLearn"


def test_registry_versions_under_concurrency(project, tmp_path):
    model_file = tmp_path / "m.joblib"
    import joblib

    joblib.dump(b"model bytes", model_file)  # a joblib file: name and content must agree
    script = (
        "import sys\nfrom mltrain.workspace import Workspace\n"
        "ws = Workspace.open(sys.argv[1])\n"
        "print(' '.join(str(ws.models.register('shared', sys.argv[2]).version) for _ in range(5)))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(project / ".mltrain"), str(model_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    versions: list[int] = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        versions += [int(v) for v in out.split()]
    assert sorted(versions) == list(range(1, 31))
    # threads of one process too
    ws = Workspace.open(str(project / ".mltrain"))
    with ThreadPoolExecutor(4) as pool:
        more = list(pool.map(lambda _: ws.models.register("shared", model_file).version, range(8)))
    assert sorted(more) == list(range(31, 39))


def test_schema_upgrade_keeps_data(tmp_path: Path):
    root = tmp_path / "old"
    root.mkdir()
    url = f"sqlite:///{root / 'mltrain.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        mig.create_version(conn, 1)
        conn.execute(insert(tables.experiments).values(id=1, name="old-exp", created_at=1.0))
        conn.execute(
            insert(tables.runs).values(
                id="r1", experiment_id=1, status="Completed", created_at=1.0, cancel_requested=False
            )
        )
        conn.execute(insert(tables.metrics).values(run_id="r1", key="acc", kind="scalar", value=0.9, ts=1.0))
    engine.dispose()
    ws = Workspace.open(str(root))
    with ws.db.read() as conn:
        assert conn.execute(select(tables.schema_info.c.version)).scalar() == tables.SCHEMA_VERSION
    assert ws.runs.get("r1")["experiment"] == "old-exp"
    assert ws.metrics.summary("r1") == {"acc": 0.9}
    assert ws.runs.list()[0]["id"] == "r1"


def test_newer_schema_is_refused(tmp_path: Path):
    root = tmp_path / "new"
    ws = Workspace.open(str(root))
    with ws.db.write() as conn:
        conn.execute(tables.schema_info.update().values(version=tables.SCHEMA_VERSION + 1))
    from mltrain.errors import WorkspaceError

    with pytest.raises(WorkspaceError, match="newer than this mltrain"):
        Workspace.open(str(root))
