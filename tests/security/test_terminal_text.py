"""Text a script stored or printed reaches the terminal with its control characters escaped: an OSC 52
sequence (writes the clipboard), CSI (clears the screen, moves the cursor), BEL, backspace and C1
controls in metric names, string metrics, tags, errors and logs never reach the output raw, in the
live output, the end-of-run summary, a sweep's progress and every command that shows a run."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from support import write_script

from mltrain.registry.store import ModelRegistry
from mltrain.text import LOG, TerminalStream, escape_controls
from mltrain.workspace import Workspace

SYSTEM = ["environment=system", "~register", "job.source_dir=src"]
OSC52 = "\x1b]52;c;aGFja2Vk\x07"
CSI = "\x1b[2J\x1b[H"
C1 = "\x9b31m"
HOSTILE = f"""
import sys
from mltrain import Run
run = Run.get_context()
run.log("acc{OSC52!s}", 0.5)
run.log("note", "v{CSI}{C1}\\b")
run.tag("k{OSC52}", "v{CSI}")
run.flush()
print("out{OSC52}", flush=True)
sys.stderr.write("progress 50%\\rprogress 100%\\n")
sys.stderr.write("boom{CSI}{OSC52}\\n")
sys.exit(3 if "--fail" in sys.argv else 0)
"""
RAW = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # every control but tab, newline and CR


def raw_controls(text: str) -> list[str]:
    return RAW.findall(text)


def test_escape_controls_and_the_stream_filter():
    assert escape_controls(f"a{OSC52}b\tc\n") == "a\\x1b]52;c;aGFja2Vk\\x07b\\x09c\\x0a"
    assert escape_controls(f"x{C1}\r\n", LOG) == "x\\x9b31m\r\n"
    stream = TerminalStream(io.BytesIO(), keep=LOG)
    pieces = "é\x1b\u009b".encode()  # a UTF-8 character and a C1 control split across writes
    got = "".join(stream.text(pieces[i : i + 1]) for i in range(len(pieces))) + stream.text(b"\xff")
    assert got == "é\\x1b\\x9b\\xff"


@pytest.fixture
def hostile_run(mltrain, project: Path) -> tuple[str, object]:
    write_script(project / "src", "hostile.py", HOSTILE)
    proc = mltrain(*SYSTEM, "job.script=hostile.py", "job.args=[--fail]")
    assert proc.returncode == 1, proc.output
    ws = Workspace.open(str(project / ".mltrain"))
    run_id = ws.runs.list()[0]["id"]
    ws.db.dispose()
    return run_id, proc


def test_live_output_and_summary_are_escaped(hostile_run):
    _, proc = hostile_run
    assert raw_controls(proc.stdout) == [] and raw_controls(proc.stderr) == [], proc.output
    assert "out\\x1b]52;c;aGFja2Vk\\x07" in proc.stdout  # the script's own line, escaped
    live, summary = proc.stderr.split("\nRun ", 1)
    assert "progress 50%\nprogress 100%" in live  # a progress bar's CR is kept (read back as a newline)
    assert "acc\\x1b]52;c;aGFja2Vk\\x07=0.5" in summary and "boom\\x1b[2J" in summary


def test_commands_that_show_a_run_escape_stored_text(cli, hostile_run):
    run_id, _ = hostile_run
    for args in (
        ("runs", "show", run_id),
        ("runs", "metrics", run_id),
        ("runs", "metrics", run_id, "--csv"),
        ("runs", "logs", run_id),
        ("runs", "compare", run_id, run_id),
        ("runs", "metrics", run_id, "nope"),  # the error's hint lists the metric names
    ):
        proc = cli(*args)
        assert raw_controls(proc.stdout) == [] and raw_controls(proc.stderr) == [], (args, proc.output)
        assert "\\x1b" in proc.stdout + proc.stderr, (args, proc.output)
    shown = cli("runs", "show", run_id).stdout
    assert "acc\\x1b]52;c;aGFja2Vk\\x07" in shown and "k\\x1b]52;c;aGFja2Vk\\x07" in shown
    exact = json.loads(cli("runs", "show", run_id, "--json").stdout)  # JSON keeps the stored text exact
    assert exact["tags"] == {f"k{OSC52}": f"v{CSI}"} and exact["metrics"]["note"] == f"v{CSI}{C1}\b"


def test_model_tags_and_descriptions_are_escaped(cli, project: Path, tmp_path: Path):
    import joblib

    model = tmp_path / "model.joblib"
    joblib.dump({"w": 1}, model)
    ws = Workspace.open(str(project / ".mltrain"), create=True)
    ModelRegistry.of(ws).register("m", model, tags={f"k{OSC52}": f"v{CSI}"}, description=f"d{OSC52}{C1}")
    ws.db.dispose()
    proc = cli("models", "show", "m")
    assert proc.returncode == 0, proc.output
    assert raw_controls(proc.stdout) == [], proc.output
    assert "k\\x1b]52;c;aGFja2Vk\\x07=v\\x1b[2J" in proc.stdout and "d\\x1b]52;c;aGFja2Vk\\x07\\x9b" in proc.stdout


def test_a_sweeps_progress_escapes_a_childs_error(mltrain, project: Path):
    write_script(project / "src", "hostile.py", HOSTILE)
    proc = mltrain("-m", *SYSTEM, "job.script=hostile.py", "+job.arguments.fail=true,false")
    assert proc.returncode == 1, proc.output
    assert raw_controls(proc.stdout) == [] and raw_controls(proc.stderr) == [], proc.output
    assert "boom\\x1b[2J" in proc.stdout
