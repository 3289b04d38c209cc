"""The Python API on Docker compute (the session's real dockerd): a detached run in a container, waited
for with its output, its metrics and outputs read back, rerun on the same compute from its record."""

from __future__ import annotations

import pytest
from support import write_script

import mltrain

pytestmark = pytest.mark.slow

SCRIPT = """
import os, platform
from mltrain import Run
run = Run.get_context()
print("in a container:", os.path.exists("/.dockerenv"), flush=True)
for step in range(3):
    run.log("loss", 1.0 / (step + 1), step=step)
os.makedirs("outputs", exist_ok=True)
open("outputs/where.txt", "w").write(platform.node())
"""


def test_api_run_on_docker_compute(project, python_image, tmp_path, capsys):
    write_script(project / "src", "job.py", SCRIPT)
    overrides = (
        "+compute=docker",
        f"environment.docker.base_image={python_image}",
        "environment.name=bare",
        "environment.pip=[]",
        "~register",
        "job.source_dir=src",
        "job.script=job.py",
    )
    run = mltrain.submit(*overrides)
    assert run.wait(show_output=True) == "Completed", "".join(run.stream(follow=False))
    assert "in a container: True" in capsys.readouterr().out
    record = run.record
    assert record.compute.startswith("docker") and record.status == "Completed"
    assert [(p.step, p.value) for p in run.metrics("loss")] == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
    assert (run.outputs(tmp_path / "out") / "outputs" / "where.txt").read_text()
    again = run.rerun(wait=True, show_output=False)
    assert again.status == "Completed" and again.record.compute == record.compute
    assert again.record.env_hash == record.env_hash and again.tags["mltrain.rerun_of"] == run.id
    assert [p.value for p in again.metrics("loss")] == [p.value for p in run.metrics("loss")]
