"""The management command on a workspace with real runs: tables, JSON, downloads, locations."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import write_script

SYSTEM = ["environment=system", "~register", "job.source_dir=src"]

UPLOADER = """
import os
from mltrain import Run
run = Run.get_context()
os.makedirs("outputs/sub", exist_ok=True)
open("outputs/sub/result.txt", "w").write("result")
open("notes.md", "w").write("# notes")
run.upload_file("reports/notes.md", "notes.md")
run.log("score", 0.75)
run.tag("stage", "test")
"""


@pytest.fixture
def two_runs(mltrain, project: Path) -> Path:
    write_script(project / "src", "up.py", UPLOADER)
    write_script(project / "src", "bad.py", "raise SystemExit(2)\n")
    assert mltrain(*SYSTEM, "job.script=up.py", "experiment_name=good").returncode == 0
    assert mltrain(*SYSTEM, "job.script=bad.py", "experiment_name=bad").returncode == 1
    return project


def test_tables_filters_and_json(cli, cli_json, two_runs):
    table = cli("runs", "list")
    assert table.returncode == 0
    header = table.stdout.splitlines()[0]
    assert header.split() == ["RUN", "ID", "EXPERIMENT", "STATUS", "CREATED", "DURATION", "COMPUTE", "SCRIPT"]
    assert "Completed" in table.stdout and "Failed" in table.stdout
    failed = cli_json("runs", "list", "--status", "failed")
    assert [r["experiment"] for r in failed] == ["bad"]
    good = cli_json("runs", "list", "--experiment", "good")
    assert [r["status"] for r in good] == ["Completed"]
    exps = {e["name"]: e["runs"] for e in cli_json("experiments", "list")}
    assert exps == {"good": 1, "bad": 1}
    shown = cli("runs", "show", good[0]["id"][:-3])  # a unique prefix is enough
    assert shown.returncode == 0
    for section in ("Status timeline:", "Metrics:", "Artifacts:", "Config:", "Tags:"):
        assert section in shown.stdout
    assert "score" in shown.stdout and "reports/notes.md" in shown.stdout


def test_download_gets_outputs_logs_and_uploads(cli, cli_json, two_runs, tmp_path):
    run = cli_json("runs", "list", "--experiment", "good")[0]
    dest = tmp_path / "got"
    proc = cli("runs", "download", run["id"], "--dest", str(dest), "--snapshot")
    assert proc.returncode == 0, proc.output
    assert (dest / "outputs" / "sub" / "result.txt").read_text() == "result"
    assert (dest / "reports" / "notes.md").read_text() == "# notes"
    assert (dest / "logs" / "std_log.txt").exists()
    assert (dest / "source" / "up.py").read_text() == UPLOADER
    assert cli_json("runs", "show", run["id"])["tags"] == {"stage": "test"}


def test_unknown_ids_are_clear_errors(cli):
    for args in (("runs", "show", "nope"), ("models", "show", "nope"), ("models", "show", "bad:name:1")):
        proc = cli(*args)
        assert proc.returncode == 2
        assert "mltrain: error:" in proc.stderr and "Traceback" not in proc.stderr


def test_workspace_location_from_env_var_and_option(mltrain, cli, cli_json, project, tmp_path):
    write_script(project / "src", "up.py", UPLOADER)
    elsewhere = tmp_path / "shared-ws"
    proc = mltrain(*SYSTEM, "job.script=up.py", env={"MLTRAIN_WORKSPACE": str(elsewhere)})
    assert proc.returncode == 0, proc.output
    assert (elsewhere / "mltrain.db").exists() and not (project / ".mltrain").exists()
    assert len(cli_json("runs", "list", env={"MLTRAIN_WORKSPACE": str(elsewhere)})) == 1
    assert len(cli_json("--workspace", str(elsewhere), "runs", "list")) == 1
    # the config key works too, and a separate artifact root is honoured
    arts = tmp_path / "artifacts"
    proc = mltrain(*SYSTEM, "job.script=up.py", f"workspace.root={elsewhere}", f"workspace.artifact_root={arts}")
    assert proc.returncode == 0, proc.output
    assert (arts / "blobs" / "sha256").is_dir()


def test_git_commit_and_dirty_flag_are_recorded(mltrain, cli_json, project):
    src = project / "src"
    write_script(src, "up.py", UPLOADER)
    git = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    subprocess.run([*git, "-C", str(src), "add", "."], check=True)
    subprocess.run([*git, "-C", str(src), "commit", "-qm", "init"], check=True)
    commit = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert mltrain(*SYSTEM, "job.script=up.py").returncode == 0
    (src / "up.py").write_text(UPLOADER + "\n# changed\n")
    assert mltrain(*SYSTEM, "job.script=up.py").returncode == 0
    dirty, clean = cli_json("runs", "list")
    assert clean["git_commit"] == commit and clean["git_dirty"] is False
    assert dirty["git_commit"] == commit and dirty["git_dirty"] is True
    assert dirty["snapshot_id"] != clean["snapshot_id"]


def test_failed_iris_run_registers_nothing(mltrain, cli_json):
    proc = mltrain("job.arguments.penalty=-1")  # SVC refuses a negative C
    assert proc.returncode == 1
    assert "Failed" in proc.stderr and "InvalidParameterError" in proc.stderr
    assert cli_json("models", "list") == []


def test_help_is_quick_to_reach(cli):
    proc = cli("--help")
    assert proc.returncode == 0
    for group in ("runs", "experiments", "models", "snapshots"):
        assert group in proc.stdout


COUNTER = """
from mltrain import Run
run = Run.get_context()
run.log("rows", 34999)
run.log("ratio", 0.1 + 0.2)
for i in range(14):
    run.log(f"m{i}", i / 3)
for step in range(4000):
    run.log("loss", 1.0 / (step + 1), step=step)
"""


@pytest.fixture
def counted(mltrain, project: Path) -> tuple[str, str]:
    """A run that logged 34999, a long float, 14 more values and a 4,000-value series (and wrote no
    outputs); (its id, the output of `python -m mltrain`)."""
    write_script(project / "src", "count.py", COUNTER)
    proc = mltrain(*SYSTEM, "job.script=count.py", "experiment_name=count")
    assert proc.returncode == 0, proc.output
    return proc.stdout.split("Run ", 1)[1].split(":", 1)[0], proc.stdout


def test_numbers_print_as_logged_and_the_summary_shows_what_exists(cli, counted):
    run_id, out = counted
    summary = out[out.index(f"Run {run_id}") :]
    assert "  metrics: rows=34999  ratio=0.3  m0=0  m1=0.3333" in summary
    assert summary.split("metrics: ")[1].splitlines()[0].endswith("(and 5 more)")  # 17 values, 12 shown
    assert "outputs:" not in summary  # the script wrote none
    shown = cli("runs", "show", run_id).stdout
    assert re.search(r"^rows +34999$", shown, flags=re.M) and "e+04" not in shown


def test_metric_values_print_as_people_read_them():
    from mltrain.runs.summary import format_value

    cases = [
        (34999.0, "34999"),
        (34999, "34999"),
        (0.25, "0.25"),
        (1e-05, "1e-05"),
        (0.9777777777777777, "0.9778"),
        (1234567.891, "1234567.9"),
        (0.1 + 0.2, "0.3"),
        (1.23456e-9, "1.235e-09"),
        (True, "True"),
        ("rbf", "rbf"),
    ]
    assert [(v, format_value(v)) for v, _ in cases] == cases


def test_a_pipe_closed_early_ends_the_command_quietly(project, counted):
    """As `mltrain runs list | head -1`: no traceback, status 0, whether the pipe closed before the
    first write or after a line (the CSV of 4,000 values is more than the pipe holds)."""
    run_id, _ = counted
    for args in (["list"], ["show", run_id], ["metrics", run_id, "loss", "--csv"]):
        for reads_a_line in (False, True):
            read_end, write_end = os.pipe()
            if not reads_a_line:
                os.close(read_end)
            command = [sys.executable, "-m", "mltrain.cli.main", "runs", *args]
            proc = subprocess.Popen(command, cwd=project, stdout=write_end, stderr=subprocess.PIPE)
            os.close(write_end)
            if reads_a_line:
                with os.fdopen(read_end, "rb") as pipe:
                    assert pipe.readline()
            _, err = proc.communicate(timeout=60)
            assert (proc.returncode, err.decode()) == (0, ""), (args, reads_a_line)
