"""Untrusted host keys of several hosts: the error lists the command that trusts each (making the
known_hosts folder when it is missing), and `mltrain compute check` shows the problem in its own column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mltrain.compute.ssh import SSHCompute
from mltrain.errors import ComputeError


def test_several_unknown_hosts_get_a_keyscan_line_each_and_the_missing_folder_is_made(
    tmp_path: Path, ssh_pool: Any
) -> None:
    known = tmp_path / "no-such-folder" / "known_hosts"
    target = SSHCompute(**ssh_pool.options(known_hosts=str(known)))
    try:
        with pytest.raises(ComputeError) as err:
            target.check()
    finally:
        target.close()
    text = str(err.value)
    for host in ssh_pool.hosts:
        assert f"mkdir -p -m 700 {known.parent} && ssh-keyscan -p {host.port} {host.addr} >> {known}" in text, text
    assert not known.parent.exists()  # nothing was trusted, nothing made


def _with_known_hosts(overrides: list[str], known: Path) -> list[str]:
    return [o for o in overrides if not o.startswith("compute.known_hosts=")] + [f"compute.known_hosts={known}"]


def test_compute_check_shows_a_host_key_problem_in_its_own_column_with_the_fix(
    cli: Any, project: Path, tmp_path: Path, ssh_pool: Any
) -> None:
    known = tmp_path / "known_hosts"
    a, b = ssh_pool.hosts
    known.write_text(a.known_hosts_line())  # a is trusted, b is not
    overrides = _with_known_hosts(ssh_pool.overrides(), known)
    proc = cli("compute", "check", *overrides)
    assert proc.returncode == 1, proc.output
    header = next(line for line in proc.stdout.splitlines() if line.startswith("HOST"))
    assert "HOST KEY" in header
    row_a = next(line for line in proc.stdout.splitlines() if f"{a.addr}:{a.port}" in line)
    row_b = next(line for line in proc.stdout.splitlines() if line.startswith(f"root@{b.addr}:{b.port}"))
    assert "trusted" in row_a and "python 3." in row_a
    assert "UNKNOWN" in row_b and "UNREACHABLE" not in row_b
    assert (
        f"hint: if that is the fingerprint of the host, trust it with `ssh-keyscan -p {b.port} {b.addr}" in proc.stdout
    )
    rows = json.loads(cli("compute", "check", "--json", *overrides).stdout)
    assert [r["host_key"] for r in rows] == ["trusted", "unknown"]
