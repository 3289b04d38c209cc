"""SSH shipping trusts nothing in the workspace or from the host: a changed blob never reaches a host, a
stored file mode is masked there, and outputs coming back are bounded by compute.max_output_mb. Real
sshd on loopback (tests/ssh/conftest.py)."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import pytest
from conformance import RecordingSink
from support import write_script

from mltrain.compute.base import RunSpec
from mltrain.compute.ssh import SSHCompute
from mltrain.environments.resolve import ResolvedEnvironment
from mltrain.errors import ComputeError, WorkspaceError
from mltrain.workspace import Workspace, WorkspaceSettings
from mltrain.workspace.runs import new_run_id


def _spec(ws: Workspace, source: Path, script: str = "job.py") -> RunSpec:
    from mltrain.environments.shim import ensure_shim

    snap = ws.snapshots.take(source)
    run_id = new_run_id()
    run_dir = ws.run_dir(run_id)
    run_dir.mkdir(parents=True)
    return RunSpec(run_id, "untrusted", run_dir, snap.id, script, [], {}, ensure_shim())


def _system_env(ws: Workspace, tmp_path: Path) -> ResolvedEnvironment:
    import dataclasses

    from mltrain.config.schema import EnvironmentConfig
    from mltrain.environments.resolve import resolve
    from mltrain.environments.spec import EnvSpec

    node = {**dataclasses.asdict(EnvironmentConfig()), "name": "system", "build": "system", "pip": []}
    return resolve(EnvSpec.from_config(node, base_dir=tmp_path), ws)


def test_a_changed_blob_never_reaches_the_host_and_modes_are_masked_there(tmp_path, ssh_pool):
    ws = Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws")))
    host = ssh_pool.hosts[0]
    target = SSHCompute(**ssh_pool.options(host))
    source = tmp_path / "src"
    write_script(source, "job.py", f"print('the real code {secrets.token_hex(8)}')\n")  # new to the host's cache
    write_script(source, "tool.sh", "#!/bin/sh\necho hi\n")
    os.chmod(source / "tool.sh", 0o6777)
    try:
        built = target.prepare(ws, _system_env(ws, tmp_path), lambda line: None)
        spec = _spec(ws, source)
        target.upload(ws, spec)  # the run folder is made there now, or with the job's start
        handle = target.start(spec, built, RecordingSink())
        assert handle.wait(60) == 0
        remote = host.workdir / "runs" / spec.run_id
        assert stat.S_IMODE((remote / "tool.sh").stat().st_mode) == 0o755  # no setuid, not world-writable
        assert stat.S_IMODE((remote / "job.py").stat().st_mode) & 0o022 == 0
        target.cleanup(spec, handle)

        write_script(source, "job.py", f"print('the real code {secrets.token_hex(8)}')\n")
        spec = _spec(ws, source)
        sha = next(f.sha256 for f in ws.snapshots.get(spec.snapshot_id).files if f.path == "job.py")
        blob = ws.blobs.path(sha)
        os.chmod(blob, 0o644)
        blob.write_text("print('changed code')\n")
        with pytest.raises(WorkspaceError, match=f"blob {sha} is corrupted"):
            target.upload(ws, spec)
            target.start(spec, built, RecordingSink())
        target.cleanup(spec, None)
        blobs = host.workdir / "blobs"
        assert not (blobs / sha).exists() and not list(blobs.glob(".up-*"))
        assert not (host.workdir / "runs" / spec.run_id / "job.py").exists()
    finally:
        target.close()


def test_outputs_over_max_output_mb_fail_the_run_with_the_option_named(tmp_path, ssh_pool):
    from conformance import RecordingSink

    ws = Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws")))
    source = tmp_path / "src"
    write_script(
        source,
        "job.py",
        "import os\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/big.bin', 'wb').write(bytes(3 << 20))\n",
    )
    target = SSHCompute(**ssh_pool.options(ssh_pool.hosts[0], max_output_mb=1))
    try:
        built = target.prepare(ws, _system_env(ws, tmp_path), lambda line: None)
        spec = _spec(ws, source)
        target.upload(ws, spec)
        handle = target.start(spec, built, RecordingSink())
        assert handle.wait(120) == 0
        with pytest.raises(ComputeError, match=r"more than compute.max_output_mb=1 MB"):
            target.collect(spec, handle)
        assert not (spec.run_dir / "outputs" / "big.bin").exists()
        target.cleanup(spec, handle)
    finally:
        target.close()
