"""A command-line sweep over quoted values: each child's script receives the exact string."""

from __future__ import annotations

import json

from support import write_script
from sweeptools import the_sweep, workspace

ECHO = """
import argparse, json, os
p = argparse.ArgumentParser()
p.add_argument("--kernel")
os.makedirs("outputs", exist_ok=True)
with open("outputs/kernel.json", "w") as f:
    json.dump(p.parse_args().kernel, f)
"""


def _received(ws, children) -> list[str]:
    got = []
    for child in children:
        assert child["status"] == "Completed", child
        with open(f"{child['run_dir']}/outputs/kernel.json") as f:
            got.append(json.load(f))
    return sorted(got)


def test_grid_sweep_over_quoted_values(project, mltrain):
    write_script(project / "src", "echo.py", ECHO)
    base = ["environment=system", "~register", "job.source_dir=src", "job.script=echo.py", "job.arguments=null"]
    proc = mltrain("-m", *base, "+job.arguments.kernel='linear','rbf'")
    assert proc.returncode == 0, proc.output
    ws = workspace(project)
    parent, children = the_sweep(ws)
    assert _received(ws, children) == ["linear", "rbf"]
    assert "QuotedString" not in proc.stdout + json.dumps([c["arguments"] for c in children])


def test_quoted_values_with_spaces_commas_quotes_and_backslashes(project, mltrain):
    write_script(project / "src", "echo.py", ECHO)
    base = ["environment=system", "~register", "job.source_dir=src", "job.script=echo.py", "job.arguments=null"]
    values = r"""'a b','c,d',"it's",'back\slash'"""
    proc = mltrain("-m", *base, f"+job.arguments.kernel={values}")
    assert proc.returncode == 0, proc.output
    ws = workspace(project)
    _, children = the_sweep(ws)
    assert _received(ws, children) == sorted(["a b", "c,d", "it's", "back\\slash"])
