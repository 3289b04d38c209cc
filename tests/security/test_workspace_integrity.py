"""The workspace under a careless user and a bad record: an upload over a written output, a bad orphan
during recovery, an empty or damaged database, corrupt blobs; check and online backup."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import start_mltrain, write_script

from mltrain.remote.procs import hostname
from mltrain.workspace import Workspace

SYSTEM = ["environment=system", "~register", "job.source_dir=src"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_upload_over_a_written_output_wins_and_the_run_completes(project, mltrain, cli, cli_json):
    write_script(
        project / "src",
        "both.py",
        "import os\nfrom mltrain import Run\nos.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/x', 'w').write('written')\nopen('other.txt', 'w').write('uploaded')\n"
        "Run.get_context().upload_file('outputs/x', 'other.txt')\n",
    )
    proc = mltrain(*SYSTEM, "job.script=both.py")
    assert proc.returncode == 0, proc.output
    run = cli_json("runs", "list")[0]
    assert run["status"] == "Completed"
    assert [a["path"] for a in cli_json("runs", "show", run["id"])["artifacts"]].count("outputs/x") == 1
    assert cli("runs", "download", run["id"], "--dest", "dl").returncode == 0
    assert (project / "dl" / "outputs" / "x").read_text() == "uploaded"
    assert cli("runs", "list").returncode == 0  # nothing left for recovery to trip on


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_recovery_marks_a_bad_orphan_failed_with_the_reason_and_goes_on(project):
    from mltrain.runs.recovery import recover_orphans

    ws = Workspace.open(str(project / ".mltrain"))
    ids = []
    for n, record in enumerate([b'{"k": {"bad": 1}, "v": 1}\n', b'{"k": "good", "v": 2}\n']):
        run_id = f"20260101_00000{n}_abcdef"
        run_dir = ws.run_dir(run_id)
        (run_dir / ".mltrain").mkdir(parents=True)
        (run_dir / ".mltrain" / "metrics.jsonl").write_bytes(record)
        (run_dir / "outputs").mkdir()
        (run_dir / "outputs" / "kept.txt").write_text(f"run {n}")
        ws.runs.create(run_id, "exp", run_dir=str(run_dir), driver_host=hostname(), driver_pid=_dead_pid())
        ws.runs.set_status(run_id, "Running")
        ids.append(run_id)
    assert sorted(recover_orphans(ws)) == ids
    bad, good = (ws.runs.get(i) for i in ids)
    assert bad["status"] == good["status"] == "Failed"
    assert "driver lost" in bad["error"] and "its metrics could not be stored" in bad["error"]
    assert "could not" not in good["error"]
    assert ws.metrics.summary(ids[1]) == {"good": 2}
    assert [a["path"] for a in ws.runs.artifacts(ids[0])] == ["outputs/kept.txt"]  # its files still stored
    assert [a["path"] for a in ws.runs.artifacts(ids[1])] == ["outputs/kept.txt"]


@pytest.mark.parametrize("content", [b"", b"this is not a database, just text" * 100])
def test_an_empty_or_damaged_database_is_a_clear_error_and_is_not_written(project, cli, mltrain, content):
    (project / ".mltrain").mkdir()
    db = project / ".mltrain" / "mltrain.db"
    db.write_bytes(content)
    before = _sha(db)
    for proc in (cli("runs", "list"), cli("workspace", "check")):
        assert proc.returncode == 2, proc.output
        assert str(db) in proc.stderr and "Traceback" not in proc.stderr
        assert ("empty (0 bytes)" if not content else "damaged") in proc.stderr
    write_script(project / "src", "t.py", "print(1)\n")
    proc = mltrain(*SYSTEM, "job.script=t.py")
    assert proc.returncode == 2 and str(db) in proc.stderr, proc.output
    assert _sha(db) == before and db.stat().st_size == len(content)
    assert not Path(f"{db}-wal").exists()


def _one_run(project: Path, mltrain) -> Workspace:
    write_script(
        project / "src",
        "out.py",
        "import os\nfrom mltrain import Run\nos.makedirs('outputs', exist_ok=True)\nfor i in range(3):\n"
        "    open(f'outputs/f{i}.txt', 'w').write(str(i) * 100)\n    Run.get_context().log('i', i)\n",
    )
    proc = mltrain(*SYSTEM, "job.script=out.py")
    assert proc.returncode == 0, proc.output
    return Workspace.open(str(project / ".mltrain"))


def test_a_damaged_page_is_a_clear_error_and_check_reports_it(project, mltrain, cli):
    _one_run(project, mltrain)
    db = project / ".mltrain" / "mltrain.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
    with open(db, "r+b") as f:  # overwrite the runs table's root page with garbage
        f.seek((root - 1) * page)
        f.write(b"\xa5" * page)
    proc = cli("runs", "list")
    assert proc.returncode == 2 and "damaged" in proc.stderr and "Traceback" not in proc.stderr, proc.output
    proc = cli("workspace", "check")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.output


def test_check_finds_corrupt_and_missing_blobs_and_missing_run_folders(project, mltrain, cli):
    ws = _one_run(project, mltrain)
    assert cli("workspace", "check").returncode == 0
    run = ws.runs.list()[0]
    arts = ws.runs.artifacts(run["id"])
    corrupt = next(a for a in arts if a["path"] == "outputs/f1.txt")
    missing = next(a for a in arts if a["path"] == "outputs/f2.txt")
    blob = ws.blobs.path(corrupt["sha256"])
    os.chmod(blob, 0o644)
    blob.write_text("tampered")
    ws.blobs.path(missing["sha256"]).unlink()
    import shutil

    shutil.rmtree(run["run_dir"])
    proc = cli("workspace", "check", "--json")
    assert proc.returncode == 1, proc.output
    report = json.loads(proc.stdout)
    assert report["bad_blobs"] == [corrupt["sha256"]] and report["missing_blobs"] == [missing["sha256"]]
    assert report["missing_run_dirs"] == [run["id"]] and report["database"] == []
    # download: every good file written, every bad blob reported at the end, nothing corrupt left behind
    proc = cli("runs", "download", run["id"], "--dest", "dl")
    assert proc.returncode == 1, proc.output
    assert "outputs/f1.txt" in proc.stderr and "outputs/f2.txt" in proc.stderr
    assert (project / "dl" / "outputs" / "f0.txt").read_text() == "0" * 100
    assert (project / "dl" / "logs" / "std_log.txt").is_file()
    assert not (project / "dl" / "outputs" / "f1.txt").exists() and not (project / "dl" / "outputs" / "f2.txt").exists()
    assert not [p for p in (project / "dl").rglob("*") if p.name.endswith(".part")]


WRITER = """
import time
from mltrain import Run
run = Run.get_context()
print('STARTED', flush=True)
for i in range(400):
    run.log('value', i, step=i)
    if i % 50 == 0:
        run.upload_file(f'up{i}.txt', __file__)
    time.sleep(0.01)
"""


def test_backup_while_runs_are_writing_is_consistent_and_complete(project, cli):
    write_script(project / "src", "writer.py", WRITER)
    _ = cli("runs", "list")  # create the workspace first
    procs = [start_mltrain(project, *SYSTEM, "job.script=writer.py") for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout is not None
            while "STARTED" not in p.stdout.readline():
                pass
        time.sleep(1.0)
        proc = cli("workspace", "backup", "bk")
        assert proc.returncode == 0, proc.output
    finally:
        for p in procs:
            p.communicate(timeout=300)
    assert all(p.returncode == 0 for p in procs)
    with sqlite3.connect(project / "bk" / "mltrain.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    proc = cli("--workspace", "bk", "workspace", "check", "--json")
    assert proc.returncode == 0, proc.output  # every blob a record of the copy names was copied
    runs = json.loads(cli("--workspace", "bk", "runs", "list", "--json").stdout)
    assert len(runs) == 2
    assert cli("workspace", "backup", "bk").returncode == 2  # not over an existing backup


def _flip_index_page(db: Path, index: str) -> None:
    """Flip bytes in the root page of ``index`` (past its header): the file still opens and reads."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (index,)).fetchone()[0]
    with open(db, "r+b") as f:
        f.seek((root - 1) * page)
        data = bytearray(f.read(page))
        for i in range(8, page, 7):
            data[i] ^= 0xFF
        f.seek((root - 1) * page)
        f.write(data)


def _run_ids(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM runs")]


@pytest.mark.parametrize("index", ["ix_metrics_run_key", "ix_runs_status"])
def test_a_run_on_a_database_with_a_damaged_index_is_refused_before_it_is_recorded(project, mltrain, cli, index):
    _one_run(project, mltrain)  # the database passed its check once (and the verdict is kept)
    db = project / ".mltrain" / "mltrain.db"
    _flip_index_page(db, index)
    before = (_sha(db), _run_ids(db))
    assert "DAMAGED" in cli("workspace", "check").stdout
    proc = mltrain(*SYSTEM, "job.script=out.py")
    assert proc.returncode == 2, proc.output
    assert "Traceback" not in proc.stderr and f"the workspace database {db} is damaged" in proc.stderr
    assert "mltrain workspace check" in proc.stderr and "backup" in proc.stderr
    assert (_sha(db), _run_ids(db)) == before  # nothing recorded
    assert len(list((project / ".mltrain" / "runs").iterdir())) == 1


def test_a_backup_of_a_damaged_database_is_a_clear_error_and_leaves_nothing(project, mltrain, cli):
    _one_run(project, mltrain)
    _flip_index_page(project / ".mltrain" / "mltrain.db", "ix_metrics_run_key")
    for dest in ("bk", "empty"):
        if dest == "empty":
            (project / "empty").mkdir()
        proc = cli("workspace", "backup", dest)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.output
        assert "is damaged, so no backup was made" in proc.stderr and "mltrain workspace check" in proc.stderr
    assert not (project / "bk").exists() and not any((project / "empty").iterdir())
    assert sorted(p.name for p in project.iterdir()) == [".mltrain", "empty", "src"]  # no partial copy beside


def test_opening_the_workspace_again_in_a_process_keeps_its_other_connections_safe(tmp_path):
    """A process that opens the workspace twice (``python -m mltrain -m sweep.resume=ID`` reads the sweep's
    record, then runs it) must not drop the SQLite locks of its first connection: another process would
    then take itself for the last one on the file, fold and remove the write-ahead log under it, and the
    first connection's next writes were lost ("disk I/O error" on the next read)."""
    root = tmp_path / "ws"
    first = Workspace.open(str(root))
    first.runs.create("r1", "e", run_dir="x")
    second = Workspace.open(str(root))  # the same file again, in this process
    other = (
        "from mltrain.workspace import Workspace\n"
        f"ws = Workspace.open({str(root)!r}); ws.runs.create('r2', 'e', run_dir='x'); ws.db.dispose()\n"
    )
    subprocess.run([sys.executable, "-c", other], check=True, timeout=60)
    first.runs.create("r3", "e", run_dir="x")
    second.runs.create("r4", "e", run_dir="x")
    conn = sqlite3.connect(root / "mltrain.db")
    try:
        assert sorted(r[0] for r in conn.execute("SELECT id FROM runs")) == ["r1", "r2", "r3", "r4"]
    finally:
        conn.close()
        first.db.dispose()
        second.db.dispose()
