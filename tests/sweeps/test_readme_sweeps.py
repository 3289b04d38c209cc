"""The README's Sweeps examples run as written."""

from __future__ import annotations

import re

from support import ROOT
from test_readme import _run_block, console_blocks  # noqa: F401 - the README helpers of tests/test_readme.py


def test_sweeps_examples_run_as_written(project):
    block = next(b for b in console_blocks() if any("+sweep=random" in line for line in b))
    proc = _run_block(block, project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"Sweep \S+: Completed \(6 completed", proc.stdout)
    assert "Children (sorted by accuracy)" in proc.stdout
    # median stopping may stop a child that logged a poor accuracy before it ended
    assert re.search(r"Sweep \S+: Completed \(\d completed, 0 failed, 0 canceled, \d stopped early\)", proc.stdout)


def test_sweep_config_example_runs(project, mltrain):
    text = (ROOT / "README.md").read_text()
    example = re.search(r"```yaml\n# conf/sweep/mysearch.yaml[^\n]*\n(.*?)```", text, flags=re.S)
    assert example
    (project / "conf" / "sweep").mkdir(parents=True)
    (project / "conf" / "sweep" / "mysearch.yaml").write_text(example.group(1))
    proc = mltrain("-m", "+sweep=mysearch", "environment=system", "sweep.max_total_runs=3")
    assert proc.returncode == 0, proc.output
    assert re.search(r"Sweep \S+: Completed \(3 completed", proc.stdout)
