"""The host of an SSH pool that ran a run is what its record, its summary and `runs show` name (not
the whole pool)."""

from __future__ import annotations

from typing import Any

from support import write_script


def test_the_host_that_ran_the_run_is_shown_not_the_pool(project, mltrain, cli_json, ssh_pool) -> None:
    write_script(project / "src", "noop.py", "print('ran')\n")
    job = ["environment=system", "~register", "job.source_dir=src", "job.script=noop.py"]
    proc = mltrain(*job, *ssh_pool.overrides())
    assert proc.returncode == 0, proc.output
    run: dict[str, Any] = cli_json("runs", "list")[0]
    shown: dict[str, Any] = cli_json("runs", "show", run["id"])
    ran = next(h for h in ssh_pool.hosts if h.addr == shown["job_ref"]["host"])
    other = next(h for h in ssh_pool.hosts if h is not ran)
    where = f"ssh (root@{ran.addr}:{ran.port})"
    assert run["compute"] == shown["compute"] == where
    assert f"compute {where})" in proc.stdout  # the summary
    assert f"{other.addr}:{other.port}" not in shown["compute"]
