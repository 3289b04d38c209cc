"""Input delivery, part of the compute-target conformance suite (:class:`conformance.ComputeTargetSuite`
inherits it): every target delivers ``job.inputs`` the same way.

A data version of fresh content is delivered to the target's node before the job starts: the script
finds it at ``${inputs.NAME}`` and ``MLTRAIN_INPUT_NAME``; a second run of the same data moves 0 bytes;
a ``mount`` never lets a script change what a later run reads; a manifest whose paths leave the
input's folder is refused; an interrupted delivery leaves no half file that a later run would take.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from mltrain.compute.data_io import InputFile, InputSpec, OutputSpec
from mltrain.data.configs import InputConfig
from mltrain.data.create import create
from mltrain.errors import MltrainError
from mltrain.remote.inputs import OUTPUTS_DIR
from mltrain.runs.inputs import resolve_input
from mltrain.workspace import Workspace

READ_INPUT = """
import json, os, sys
path = sys.argv[1]
files = {}
for root, _dirs, names in os.walk(path):
    for n in names:
        full = os.path.join(root, n)
        files[os.path.relpath(full, path).replace(os.sep, "/")] = open(full).read()
st = os.stat(os.path.join(path, "a.csv"))
file_id = [st.st_ino, st.st_ctime_ns]  # which file it is
try:
    if sys.argv[2:] == ["read-only"]:
        raise PermissionError
    with open(os.path.join(path, "a.csv"), "a") as f:
        f.write("written by the script")
    wrote = "yes"
except OSError as exc:
    wrote = type(exc).__name__
print("SEEN " + json.dumps({"files": files, "env": os.environ.get("MLTRAIN_INPUT_d") == path, "wrote": wrote,
                            "file": file_id}))
"""


def seen(job: Any) -> dict[str, Any]:
    assert job.wait() == 0, job.sink.data
    line = next(x for x in job.sink.text().splitlines() if x.startswith("SEEN "))
    return json.loads(line[5:])


class Interrupted(Exception):
    pass


class BreaksMidway:
    """An input source that fails after the first half of a file (a connection lost while fetching)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def open(self, f: InputFile) -> BinaryIO:
        inner = self.inner.open(f)

        class Stream:
            def __init__(self) -> None:
                self.left = f.size // 2

            def read(self, n: int = -1) -> bytes:
                if self.left <= 0:
                    raise Interrupted("connection lost")
                data = inner.read(min(self.left, n if n > 0 else self.left))
                self.left -= len(data)
                return data

            def __enter__(self) -> Stream:
                return self

            def __exit__(self, *exc: object) -> None:
                inner.close()

            def close(self) -> None:
                inner.close()

        return Stream()  # type: ignore[return-value]

    def local_path(self, f: InputFile) -> None:
        return None

    def node_hint(self, f: InputFile) -> None:
        return None


class InputDeliverySuite:
    """The input-delivery part of the conformance suite (uses the suite's ``start`` and ``ws``)."""

    @pytest.fixture
    def make_input(self, ws: Workspace, tmp_path: Path) -> Callable[..., tuple[InputSpec, dict[str, str]]]:
        """``make_input(mode)``: an input ``d`` of a new data version of fresh content, and that content."""

        def make(mode: str = "download") -> tuple[InputSpec, dict[str, str]]:
            folder = tmp_path / f"data-{secrets.token_hex(4)}"
            (folder / "sub").mkdir(parents=True)
            content = {"a.csv": f"a,b\n{secrets.token_hex(16)}\n", "sub/b.txt": secrets.token_hex(4000)}
            for rel, text in content.items():
                (folder / rel).write_text(text)
            version = create(ws, "d", folder)
            return resolve_input(ws, "d", InputConfig(path=version.ref, mode=mode)).spec, content

        return make

    def test_an_input_reaches_the_script_and_a_second_run_moves_nothing(
        self, start: Callable[..., Any], make_input: Callable[..., tuple[InputSpec, dict[str, str]]]
    ) -> None:
        inp, content = make_input("download")
        first = start(READ_INPUT, "${inputs.d}", inputs=[inp])
        assert first.delivered.moved.bytes == inp.size
        got = seen(first)
        assert got["files"] == content and got["env"] and got["wrote"] == "yes"  # download: a private copy
        second = start(READ_INPUT, "${inputs.d}", inputs=[inp])
        assert second.delivered.moved.bytes == 0
        assert seen(second)["files"] == content  # the first script's change reached nobody

    def test_an_untouched_download_is_reused_by_the_next_run_and_a_changed_one_is_not(
        self, start_on_one_node: Callable[..., Any], make_input: Callable[..., tuple[InputSpec, dict[str, str]]]
    ) -> None:
        """A second run of a download on the same node gets the first run's private copy when that script
        left it as it was (the same files: not one byte copied again); after a script wrote to its copy,
        the next run gets a fresh one. (Each node has a cache of its own: the runs are kept on one.)"""
        inp, content = make_input("download")

        def run(*args: str) -> dict[str, Any]:
            job = start_on_one_node(READ_INPUT, "${inputs.d}", *args, inputs=[inp])
            got = seen(job)
            job.delivered.release()
            job.target.cleanup(job.spec, job.handle)  # the run folder goes: its untouched copy is kept
            return got

        first, second = run("read-only"), run()
        assert first["files"] == second["files"] == content and second["wrote"] == "yes"
        assert second["file"] == first["file"]  # the same file (inode and change time): reused, not copied
        third = run("read-only")
        assert third["files"] == content  # the second script's change reached nobody

    def test_a_mounted_input_never_changes_for_a_later_run(
        self, start: Callable[..., Any], make_input: Callable[..., tuple[InputSpec, dict[str, str]]]
    ) -> None:
        inp, content = make_input("mount")
        first = start(READ_INPUT, "${inputs.d}", inputs=[inp])
        got = seen(first)
        assert got["files"] == content
        if self.mount_is_read_only:
            assert got["wrote"] != "yes"
        assert first.delivered.check() == []  # root writes to its own read-only copy, others cannot write
        second = start(READ_INPUT, "${inputs.d}", inputs=[inp])
        assert seen(second)["files"] == content

    mount_is_read_only = False  # True where the target enforces it (a read-only bind mount)

    def test_a_manifest_path_leaving_its_folder_is_refused(
        self, start: Callable[..., Any], make_input: Callable[..., tuple[InputSpec, dict[str, str]]], tmp_path: Path
    ) -> None:
        inp, _content = make_input("download")
        for bad in ("../escaped.csv", "/etc/escaped.csv", "sub/../../escaped.csv"):
            files = (dataclasses.replace(inp.files[0], relpath=bad), *inp.files[1:])
            with pytest.raises((MltrainError, ValueError)) as info:
                start("print('never')\n", inputs=[dataclasses.replace(inp, files=files)])
            assert "escaped.csv" in str(info.value)
        assert not list(tmp_path.rglob("escaped.csv")) and not Path("/etc/escaped.csv").exists()

    def test_an_output_folder_is_made_and_comes_back(self, start: Callable[..., Any]) -> None:
        job = start(
            "import os, sys\nout = sys.argv[1]\nassert os.environ['MLTRAIN_OUTPUT_o'] == out and os.path.isdir(out)\n"
            "os.makedirs(os.path.join(out, 'sub'))\nopen(os.path.join(out, 'sub', 'x.txt'), 'w').write('made')\n",
            "${outputs.o}",
            outputs=[OutputSpec("o", "made")],
        )
        assert job.wait() == 0, job.sink.data
        job.target.collect(job.spec, job.handle)
        assert (job.spec.run_dir / OUTPUTS_DIR / "o" / "sub" / "x.txt").read_text() == "made"

    def test_an_interrupted_delivery_leaves_no_half_file(
        self, start: Callable[..., Any], make_input: Callable[..., tuple[InputSpec, dict[str, str]]]
    ) -> None:
        inp, content = make_input("download")
        with pytest.raises(Exception, match="connection lost"):
            start("print('never')\n", inputs=[dataclasses.replace(inp, source=BreaksMidway(inp.source))])
        again = start(READ_INPUT, "${inputs.d}", inputs=[inp])
        assert again.delivered.moved.bytes == inp.size  # nothing half-written was taken as cached
        assert seen(again)["files"] == content
