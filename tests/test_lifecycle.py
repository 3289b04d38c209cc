"""Run lifecycle on local compute: failure, cancel by signal, orphan recovery, cancel command, limits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import pid_alive, readme_compute_target, start_mltrain, wait_dead, write_script

from mltrain.workspace import Workspace, WorkspaceSettings

SYSTEM = ["environment=system", "~register", "job.source_dir=src", "experiment_name=life"]

# A job that logs, writes outputs and a log file, starts a grandchild, then waits to be stopped.
LONG_JOB = """
import os, subprocess, sys, time
from mltrain import Run
run = Run.get_context()
os.makedirs("outputs", exist_ok=True); os.makedirs("logs", exist_ok=True)
open("outputs/partial.txt", "w").write("written before the end")
open("logs/own.log", "w").write("a log of the script")
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open("outputs/grandchild.pid", "w").write(str(child.pid))
for i in range(50):
    run.log("loss", 1.0 / (i + 1), step=i)
run.flush()
print("READY", flush=True)
time.sleep(600)
"""


def _start(project: Path, *overrides: str) -> subprocess.Popen[str]:
    return start_mltrain(project, *SYSTEM, *overrides)


def _wait_for_line(proc: subprocess.Popen[str], marker: str, timeout: float = 120) -> list[str]:
    seen = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"{marker!r} never printed; got {seen}")


def test_failing_script_marks_failed_with_exit_code_and_stderr(mltrain, cli_json, project):
    write_script(
        project / "src",
        "boom.py",
        "import sys\nprint('working')\nsys.stderr.write('bad things\\n')\nraise SystemExit(3)\n",
    )
    proc = mltrain(*SYSTEM, "job.script=boom.py")
    assert proc.returncode == 1, proc.output
    assert "Failed" in proc.stderr and "exit code 3" in proc.stderr and "bad things" in proc.stderr
    run = cli_json("runs", "list")[0]
    assert run["status"] == "Failed" and run["exit_code"] == 3
    assert "bad things" in run["error"]


def test_traceback_of_a_crash_is_in_the_error(mltrain, cli_json, project):
    write_script(
        project / "src",
        "crash.py",
        "from mltrain import Run\nRun.get_context().log('before', 1)\nraise ValueError('the data is wrong')\n",
    )
    proc = mltrain(*SYSTEM, "job.script=crash.py")
    assert proc.returncode == 1
    run = cli_json("runs", "show", cli_json("runs", "list")[0]["id"])
    assert "ValueError: the data is wrong" in run["error"]
    assert run["metrics"] == {"before": 1.0}  # logged before the crash: kept


def test_sigint_cancels_whole_group_and_keeps_what_was_written(cli_json, project):
    write_script(project / "src", "long.py", LONG_JOB)
    proc = _start(project, "job.script=long.py")
    _wait_for_line(proc, "READY")
    grandchild = int((next((project / ".mltrain" / "runs").iterdir()) / "outputs" / "grandchild.pid").read_text())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert wait_dead(grandchild), "the script's child survived the cancel"
    run = cli_json("runs", "show", cli_json("runs", "list")[0]["id"])
    assert run["status"] == "Canceled" and "SIGINT" in run["error"]
    assert run["history"][-1]["status"] == "Canceled"
    paths = {a["path"] for a in run["artifacts"]}
    assert {"outputs/partial.txt", "logs/own.log", "logs/std_log.txt"} <= paths
    assert run["metrics"]["loss"] == pytest.approx(1 / 50)


def test_sigterm_cancels_too(cli_json, project):
    write_script(project / "src", "long.py", LONG_JOB)
    proc = _start(project, "job.script=long.py")
    _wait_for_line(proc, "READY")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert cli_json("runs", "list")[0]["status"] == "Canceled"


def test_sigkill_of_driver_is_recovered_by_next_command(cli, cli_json, project):
    write_script(project / "src", "long.py", LONG_JOB)
    proc = _start(project, "job.script=long.py")
    _wait_for_line(proc, "READY")
    run_dir = next((project / ".mltrain" / "runs").iterdir())
    grandchild = int((run_dir / "outputs" / "grandchild.pid").read_text())
    proc.kill()
    proc.wait(timeout=30)
    listed = cli_json("runs", "list")  # any command recovers orphans first
    assert listed[0]["status"] == "Failed"
    assert "driver lost" in listed[0]["error"]
    assert wait_dead(grandchild), "the orphaned job was not stopped"
    shown = cli_json("runs", "show", listed[0]["id"])
    assert shown["metrics"]["loss"] == pytest.approx(1 / 50)  # flushed before the kill: stored
    assert "outputs/partial.txt" in {a["path"] for a in shown["artifacts"]}
    assert [h["status"] for h in shown["history"]][-1] == "Failed"


def test_the_mltrain_command_stops_a_lost_job_through_the_projects_own_target(project):
    """A project's compute target (the README's, in ./mycompute.py) is imported by the `mltrain`
    console script as by `python -m mltrain`: it stops the job its killed driver left running."""
    readme_compute_target(project)
    write_script(project / "src", "long.py", LONG_JOB)
    proc = _start(project, "+compute=mine", "job.script=long.py")
    _wait_for_line(proc, "READY")
    run_dir = next((project / ".mltrain" / "runs").iterdir())
    grandchild = int((run_dir / "outputs" / "grandchild.pid").read_text())
    ws = Workspace(WorkspaceSettings.resolve(str(project / ".mltrain")))
    pgid = ws.runs.get(run_dir.name)["job_ref"]["pgid"]
    proc.kill()
    proc.wait(timeout=30)
    try:
        assert pid_alive(grandchild)  # this target does not tie the job to its driver
        command = Path(sys.executable).parent / "mltrain"
        listed = subprocess.run([str(command), "runs", "list", "--json"], cwd=project, capture_output=True, text=True)
        assert listed.returncode == 0, listed.stderr
        assert "could not stop" not in listed.stderr and "No module named" not in listed.stderr
        run = json.loads(listed.stdout)[0]
        assert run["status"] == "Failed" and "driver lost" in run["error"]
        assert wait_dead(grandchild), "the job was not stopped through the project's target"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def test_runs_cancel_command_and_logs_follow(cli, cli_json, project):
    write_script(project / "src", "long.py", LONG_JOB)
    proc = _start(project, "job.script=long.py")
    _wait_for_line(proc, "READY")
    run_id = cli_json("runs", "list")[0]["id"]
    follower = subprocess.Popen(
        [sys.executable, "-m", "mltrain.cli.main", "runs", "logs", run_id, "-f"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    canceled = cli("runs", "cancel", run_id)
    assert canceled.returncode == 0, canceled.output
    assert "Canceled" in canceled.stdout
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    out, err = follower.communicate(timeout=30)
    assert "READY" in out and "Canceled" in err
    run = cli_json("runs", "show", run_id)
    assert run["error"] == "canceled with `mltrain runs cancel`"  # the command is named, not a signal
    assert run["job_ref"]["kind"] == "local" and run["job_ref"]["pgid"] > 0


def test_runs_cancel_of_a_run_whose_driver_died_stops_its_job_through_the_target(cli, cli_json, project):
    write_script(project / "src", "long.py", LONG_JOB)
    proc = _start(project, "job.script=long.py")
    _wait_for_line(proc, "READY")
    run_dir = next((project / ".mltrain" / "runs").iterdir())
    grandchild = int((run_dir / "outputs" / "grandchild.pid").read_text())
    # the script itself ends with its driver (parent-death signal), its grandchild is left in the group
    proc.kill()
    proc.wait(timeout=30)
    canceled = cli("runs", "cancel", run_dir.name)
    assert canceled.returncode == 0, canceled.output
    run = cli_json("runs", "show", run_dir.name)
    assert run["status"] == "Canceled"
    assert run["error"] == "canceled with `mltrain runs cancel` (its driver was gone)"
    assert wait_dead(grandchild), "the job's process group survived the cancel"
    assert run["metrics"]["loss"] == pytest.approx(1 / 50)
    assert "outputs/partial.txt" in {a["path"] for a in run["artifacts"]}


def test_max_run_duration_cancels(mltrain, cli_json, project):
    write_script(project / "src", "slow.py", "import time\nprint('start', flush=True)\ntime.sleep(120)\n")
    proc = mltrain(*SYSTEM, "job.script=slow.py", "job.max_run_duration_s=1")
    assert proc.returncode == 130
    run = cli_json("runs", "list")[0]
    assert run["status"] == "Canceled" and "max_run_duration_s" in run["error"]


def test_script_runs_in_its_own_folder_not_the_users_tree(mltrain, cli_json, project):
    write_script(project / "src", "writer.py", "import os\nopen('made_here.txt','w').write(os.getcwd())\n")
    proc = mltrain(*SYSTEM, "job.script=writer.py")
    assert proc.returncode == 0, proc.output
    assert not (project / "src" / "made_here.txt").exists()
    run = cli_json("runs", "list")[0]
    assert (Path(run["run_dir"]) / "made_here.txt").read_text() == run["run_dir"]


def test_arguments_and_env_vars_reach_the_script(mltrain, cli_json, project):
    write_script(
        project / "src",
        "args.py",
        "import os, sys\nfrom mltrain import Run\n"
        "Run.get_context().log_list('argv', sys.argv[1:])\nRun.get_context().log('flag', os.environ['MY_FLAG'])\n",
    )
    proc = mltrain(
        *SYSTEM,
        "job.script=args.py",
        "+job.arguments.alpha=0.1",
        "+job.arguments.names=[a,b]",
        "job.args=[--verbose]",
        "+job.env_vars.MY_FLAG=on",
    )
    assert proc.returncode == 0, proc.output
    run = cli_json("runs", "show", cli_json("runs", "list")[0]["id"])
    # the iris job's own arguments come first, then the added ones, then the verbatim args
    assert run["metrics"]["argv"] == [
        "--kernel",
        "rbf",
        "--penalty",
        "1.0",
        "--alpha",
        "0.1",
        "--names",
        "a",
        "b",
        "--verbose",
    ]
    assert run["metrics"]["flag"] == "on"
