"""SSH compute passes the compute-target conformance suite against a real sshd on loopback."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from conformance import ComputeTargetSuite
from conformance_data import READ_INPUT, seen

from mltrain.compute.base import ComputeTarget, JobRef, RunSpec
from mltrain.compute.data_io import InputFile
from mltrain.compute.ssh import SSHCompute
from mltrain.errors import ComputeError
from mltrain.remote.procs import group_exists


class Resized:
    """An input source whose files are ``change`` bytes longer (or shorter) than recorded: a file that
    changed after its version was made, or while it is read."""

    def __init__(self, inner: Any, change: int) -> None:
        self.inner, self.change = inner, change

    def open(self, f: InputFile) -> BinaryIO:
        import io

        with self.inner.open(f) as stream:
            data = stream.read()
        return io.BytesIO(data + b"x" * self.change if self.change > 0 else data[: self.change])

    def local_path(self, f: InputFile) -> None:
        return None

    def node_hint(self, f: InputFile) -> None:
        return None


class TestSSHCompute(ComputeTargetSuite):
    @pytest.fixture
    def make_target(self, ssh_pool) -> Callable[[], ComputeTarget]:
        return lambda: SSHCompute(**ssh_pool.options(ssh_pool.hosts[0]), cancel_grace_s=2.0)

    @pytest.fixture
    def environment_config(self) -> dict:
        return {"name": "bare", "build": "venv", "pip": []}

    def assert_cleaned(self, target: ComputeTarget, spec: RunSpec, ref: JobRef) -> None:
        # the "host" is this machine: its run folder and the job's process group are gone
        assert isinstance(target, SSHCompute)
        workdir = target.remotes[0].probe["workdir"]
        assert not (Path(workdir) / "runs" / spec.run_id).exists()
        assert not group_exists(int(ref["pgid"]))

    def test_an_input_file_that_changed_while_it_is_sent_is_refused_and_not_cached(
        self, start: Callable[..., Any], make_input: Callable[..., Any]
    ) -> None:
        inp, content = make_input("download")
        for change in (1, -1):
            with pytest.raises(ComputeError, match=r"input d: .* is no longer the \d+ bytes recorded"):
                start("print('never')\n", inputs=[dataclasses.replace(inp, source=Resized(inp.source, change))])
        again = start(READ_INPUT, "${inputs.d}", inputs=[inp])
        assert again.delivered.moved.bytes == inp.size  # nothing of the changed files was cached
        assert seen(again)["files"] == content
