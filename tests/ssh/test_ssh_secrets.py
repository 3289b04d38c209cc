"""A job's variable read from the driver's environment (``${oc.env:NAME}``) reaches the script on an SSH
host, and the run's record holds the reference only."""

from __future__ import annotations

from pathlib import Path

from support import write_script

SECRET = "ssh-s3cr3t-41d9"
SHOW = """
import os
print("SECRET is set" if os.environ.get("SECRET") == os.environ.get("EXPECTED_REVERSED", "")[::-1] else "SECRET wrong")
"""


def test_an_env_reference_is_read_when_the_job_starts_on_the_host(mltrain, cli_json, project: Path, ssh_pool):
    write_script(project / "src", "show.py", SHOW)
    proc = mltrain(
        *ssh_pool.overrides(ssh_pool.hosts[0]),
        "environment=system",
        "~register",
        "job.source_dir=src",
        "job.script=show.py",
        "+job.env_vars.SECRET='${oc.env:DRIVER_SECRET}'",
        f"+environment.env_vars.EXPECTED_REVERSED={SECRET[::-1]}",
        env={"DRIVER_SECRET": SECRET},
    )
    assert proc.returncode == 0, proc.output
    assert "SECRET is set" in proc.stdout  # streamed back from the host
    run = cli_json("runs", "show", cli_json("runs", "list")[0]["id"])
    assert run["config"]["job"]["env_vars"] == {"SECRET": "${oc.env:DRIVER_SECRET}"}
    for db_file in (project / ".mltrain").glob("mltrain.db*"):
        assert SECRET.encode() not in db_file.read_bytes()
