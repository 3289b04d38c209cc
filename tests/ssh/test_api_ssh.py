"""The Python API on SSH compute (two real sshd on loopback): a detached run on a host, waited for with
its output, its metrics and outputs read back; a sweep over both hosts."""

from __future__ import annotations

from support import write_script

import mltrain

SCRIPT = """
import socket, sys
from mltrain import Run
run = Run.get_context()
x = int(sys.argv[-1]) if len(sys.argv) > 1 else 1
print("remote run", x, flush=True)
run.log("y", x * x)
"""


def test_api_run_and_sweep_on_ssh_compute(project, ssh_pool, tmp_path, capsys):
    write_script(project / "src", "job.py", SCRIPT)
    base = ("environment=system", "~register", "job.source_dir=src", "job.script=job.py", "job.arguments=null")
    run = mltrain.submit(*base, *ssh_pool.overrides(ssh_pool.hosts[0]))
    assert run.wait(show_output=True) == "Completed", "".join(run.stream(follow=False))
    assert "remote run 1" in capsys.readouterr().out
    assert run.record.compute.startswith("ssh (") and run.record.metrics["y"] == 1
    assert "logs/std_log.txt" in run.file_names()
    sweep = mltrain.sweep(*base, *ssh_pool.overrides(), "+job.arguments.x=2,3", "sweep.primary_metric.name=y")
    assert sweep.wait() == "Completed"
    assert sorted(c.record.metrics["y"] for c in sweep.children) == [4, 9]
    assert sweep.best.record.metrics["y"] == 9
    hosts = {c.record.to_dict()["compute"] for c in sweep.children}
    assert all(h.startswith("ssh (") for h in hosts)
