"""Environments on SSH hosts: ``environment.rebuild`` builds again on every host a job lands on, and
a build on a later host is announced like the first one's."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from support import write_script

from mltrain.compute.base import RunSpec
from mltrain.compute.ssh import SSHCompute
from mltrain.config.schema import EnvironmentConfig
from mltrain.environments.resolve import resolve
from mltrain.environments.shim import ensure_shim
from mltrain.environments.spec import EnvSpec
from mltrain.workspace import Workspace, WorkspaceSettings
from mltrain.workspace.runs import new_run_id


def _built_at(host: Any, env_hash: str) -> float:
    return float(json.loads((host.workdir / "venvs" / env_hash[:24] / ".mltrain-ready").read_text())["built_at"])


def _prepare_and_land_on_both(target: SSHCompute, ws: Workspace, env: Any, src: Path, rebuild: bool) -> list[str]:
    """Prepare ``env`` (with ``rebuild``) and upload a run to each host of ``target``; the build log."""
    log: list[str] = []
    target.prepare(ws, env, log.append, rebuild=rebuild)
    snap = ws.snapshots.take(src)
    specs = []
    for _ in target.remotes:  # each upload holds a slot: the next one goes to the host with more free
        run_id = new_run_id()
        (ws.run_dir(run_id)).mkdir(parents=True)
        spec = RunSpec(run_id, "t", ws.run_dir(run_id), snap.id, "job.py", [], {}, ensure_shim())
        target.upload(ws, spec)
        specs.append(spec)
    assert {target.pool.held[s.run_id].label for s in specs} == {r.label for r in target.remotes}
    for spec in specs:
        target.cleanup(spec, None)
    return log


def test_rebuild_builds_again_on_every_host_and_each_host_build_is_announced(tmp_path: Path, ssh_pool: Any) -> None:
    ws = Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws")))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "job.py").write_text("pass\n")
    node = {**dataclasses.asdict(EnvironmentConfig()), "name": "bare-rebuild", "build": "venv", "pip": []}
    env = resolve(EnvSpec.from_config(node, base_dir=tmp_path), ws)
    a, b = ssh_pool.hosts
    opts = {**ssh_pool.options(a, b), "hosts": [a.entry(slots=1), b.entry(slots=1)]}

    first = SSHCompute(**opts)
    try:
        log = _prepare_and_land_on_both(first, ws, env, tmp_path / "src", rebuild=False)
    finally:
        first.close()
    for remote in first.remotes:  # the build on each host is announced, the second one too
        assert any(remote.label in line and "bare-rebuild" in line for line in log), (remote.label, log)
    before = {h.addr: _built_at(h, env.hash) for h in (a, b)}

    again = SSHCompute(**opts)
    try:
        _prepare_and_land_on_both(again, ws, env, tmp_path / "src", rebuild=True)
    finally:
        again.close()
    after = {h.addr: _built_at(h, env.hash) for h in (a, b)}
    assert all(after[addr] > before[addr] for addr in before), (before, after)  # built again on both hosts


def test_cpus_and_memory_gb_without_a_container_are_refused_before_the_run(mltrain, cli_json, project, ssh_pool):
    write_script(project / "src", "noop.py", "pass\n")
    job = ["environment=system", "~register", "job.source_dir=src", "job.script=noop.py", "compute.memory_gb=1"]
    proc = mltrain(*job, *ssh_pool.overrides(ssh_pool.hosts[0]))
    assert proc.returncode != 0
    assert "compute.memory_gb limit a job's container" in proc.output and "build: system" in proc.output
    assert cli_json("runs", "list") == []
