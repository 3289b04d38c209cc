"""The conformance suite of compute targets (as Hydra's ``LauncherTestSuite`` is for launchers).

It drives a target through its lifecycle in process — prepare, upload, deliver (inputs: see
:mod:`conformance_data`), start, stream, metrics,
cancel (graceful, forced, right after start), exit codes, collect, cleanup, and attach/stop from a
stored JSON reference by a second target object — against the real thing the target talks to.

A subclass (``class TestMyTarget(ComputeTargetSuite)``) provides two fixtures:

- ``make_target``: a callable returning a new target object (use a short ``cancel_grace_s``, e.g. 2;
  a target of several nodes takes options, the ``one_node_options`` that keep its runs on one node);
- ``environment_config``: the ``environment`` config node of an environment the target runs
  (keys of ``mltrain.config.schema.EnvironmentConfig``; missing keys take their defaults),
  and may override ``assert_cleaned`` to check what ``cleanup`` released.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conformance_data import InputDeliverySuite

from mltrain.compute.base import ComputeTarget, JobRef, RunHandle, RunSpec
from mltrain.compute.delivery import Delivered
from mltrain.config.schema import EnvironmentConfig
from mltrain.environments.resolve import resolve
from mltrain.environments.shim import ensure_shim
from mltrain.environments.spec import EnvSpec
from mltrain.runs.trial import write_run_info
from mltrain.workspace import Workspace, WorkspaceSettings
from mltrain.workspace.runs import new_run_id

WAIT_S = 120.0  # generous: remote targets and loaded CI machines

SIGNAL_AWARE = """
import os, signal, sys, time
os.makedirs("outputs", exist_ok=True)
def stop(sig, frame):
    open("outputs/stopped.txt", "w").write(signal.Signals(sig).name)
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
print("READY", flush=True)
time.sleep(600)
"""

STUBBORN = """
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("READY", flush=True)
time.sleep(600)
"""


class RecordingSink:
    """An OutputSink that keeps what it got, per stream."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.data: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self.lines: list[str] = []

    def write(self, data: bytes, stream: str) -> None:
        with self._lock:
            self.data[stream] = self.data.get(stream, b"") + data

    def log(self, line: str) -> None:
        self.lines.append(line)

    def text(self, stream: str = "stdout") -> str:
        with self._lock:
            return self.data.get(stream, b"").decode(errors="replace")


@dataclasses.dataclass
class Job:
    target: ComputeTarget
    spec: RunSpec
    handle: RunHandle
    sink: RecordingSink
    delivered: Delivered = dataclasses.field(default_factory=Delivered)

    def wait(self, timeout: float = WAIT_S) -> int:
        code = self.handle.wait(timeout)
        assert code is not None, f"the job did not end within {timeout} s; output: {self.sink.text()!r}"
        return code

    def wait_for_output(self, marker: str, timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.sink.text():
            assert time.monotonic() < deadline, f"{marker!r} never came; got {self.sink.text()!r}"
            assert self.handle.wait(0.05) is None, f"the job ended before {marker!r}: {self.sink.data}"


class ComputeTargetSuite(InputDeliverySuite):
    """Subclass it and provide ``make_target`` and ``environment_config`` fixtures."""

    def assert_cleaned(self, target: ComputeTarget, spec: RunSpec, ref: JobRef) -> None:
        """What a target checks after ``cleanup`` (e.g. the container is gone); nothing by default."""

    # -- fixtures --------------------------------------------------------------------------------
    @pytest.fixture
    def target(self, make_target: Callable[[], ComputeTarget]) -> Iterator[ComputeTarget]:
        target = make_target()
        yield target
        target.close()

    @pytest.fixture
    def ws(self, tmp_path: Path) -> Workspace:
        return Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws")))

    @pytest.fixture
    def start(
        self, target: ComputeTarget, ws: Workspace, tmp_path: Path, environment_config: dict[str, Any]
    ) -> Iterator[Callable[..., Job]]:
        """``start(script_text, *args, env_vars=...)``: a started job of ``target``; cleaned up after."""
        yield from self.starter(target, ws, tmp_path, environment_config)

    # options of ``make_target`` that keep every run on one node, for a target of several nodes
    # (each node has a cache of its own: a test of reuse needs both runs on the same one)
    one_node_options: dict[str, Any] = {}

    @pytest.fixture
    def one_node_target(
        self, target: ComputeTarget, make_target: Callable[..., ComputeTarget]
    ) -> Iterator[ComputeTarget]:
        """A target whose runs all land on one node: ``target`` itself unless ``one_node_options``."""
        if not self.one_node_options:
            yield target
            return
        pinned = make_target(**self.one_node_options)
        yield pinned
        pinned.close()

    @pytest.fixture
    def start_on_one_node(
        self, one_node_target: ComputeTarget, ws: Workspace, tmp_path: Path, environment_config: dict[str, Any]
    ) -> Iterator[Callable[..., Job]]:
        """``start`` of ``one_node_target``."""
        yield from self.starter(one_node_target, ws, tmp_path, environment_config)

    def starter(
        self, target: ComputeTarget, ws: Workspace, tmp_path: Path, environment_config: dict[str, Any]
    ) -> Iterator[Callable[..., Job]]:
        """The ``start`` of ``target`` (the fixtures' body): it yields once, then cleans up the jobs."""
        node = {**dataclasses.asdict(EnvironmentConfig()), **environment_config}
        env = resolve(EnvSpec.from_config(node, base_dir=tmp_path), ws)
        target.builder(env).check(env)
        built = target.prepare(ws, env, lambda line: None)
        jobs: list[Job] = []
        serial = itertools.count()

        def _start(
            script: str, *args: str, env_vars: dict[str, str] | None = None, inputs: Any = (), outputs: Any = ()
        ) -> Job:
            source = tmp_path / f"src-{next(serial)}"
            source.mkdir()
            (source / "job.py").write_text(script)
            snapshot = ws.snapshots.take(source)
            run_id = new_run_id()
            run_dir = ws.run_dir(run_id)
            run_dir.mkdir(parents=True)
            spec = RunSpec(
                run_id,
                "conformance",
                run_dir,
                snapshot.id,
                "job.py",
                list(args),
                env_vars or {},
                ensure_shim(),
                inputs=tuple(inputs),
                outputs=tuple(outputs),
            )
            target.upload(ws, spec)
            sink = RecordingSink()
            try:
                delivered = target.deliver(ws, spec, sink.log) if inputs or outputs else Delivered()
            except BaseException:
                target.cleanup(spec, None)
                raise
            write_run_info(run_dir, run_id, "conformance")
            job = Job(target, spec, target.start(spec, built, sink), sink, delivered)
            jobs.append(job)
            return job

        yield _start
        for job in jobs:
            job.handle.cancel("test over", force=True)
            job.handle.wait(30)
            job.delivered.release()
            target.cleanup(job.spec, job.handle)

    # -- the contract ----------------------------------------------------------------------------
    def test_output_streams_while_the_job_runs(self, start: Callable[..., Job]) -> None:
        job = start(
            "import sys, time\nprint('first', flush=True)\nsys.stderr.write('on stderr\\n')\n"
            "time.sleep(3)\nprint('second')\n"
        )
        job.wait_for_output("first")
        assert "second" not in job.sink.text()  # it came while the job was still running
        assert job.wait() == 0
        assert "second" in job.sink.text()
        assert "on stderr" in job.sink.text("stderr")

    def test_arguments_and_environment_reach_the_script(self, start: Callable[..., Job]) -> None:
        job = start(
            "import os, sys\nprint(sys.argv[1:], os.environ['JOB_SETTING'], os.environ['MLTRAIN_RUN_ID'])\n",
            "--C",
            "0.5",
            env_vars={"JOB_SETTING": "from-the-job"},
        )
        assert job.wait() == 0
        assert f"['--C', '0.5'] from-the-job {job.spec.run_id}" in job.sink.text()

    def test_metrics_arrive_while_the_job_runs(self, start: Callable[..., Job]) -> None:
        job = start(
            "import time\nfrom mltrain import Run\nrun = Run.get_context()\n"
            "for i in range(3):\n    run.log('loss', 1.0 / (i + 1), step=i)\nrun.flush()\n"
            "print('LOGGED', flush=True)\ntime.sleep(600)\n"
        )
        job.wait_for_output("LOGGED")
        data = b""
        deadline = time.monotonic() + WAIT_S
        while data.count(b"\n") < 3 and time.monotonic() < deadline:
            data += job.handle.read_metrics()
            time.sleep(0.1)
        records = [json.loads(line) for line in data.splitlines()]
        assert [(r["k"], r["v"], r["s"]) for r in records] == [("loss", 1.0, 0), ("loss", 0.5, 1), ("loss", 1 / 3, 2)]
        assert job.handle.wait(0) is None  # read live, not at the end

    def test_non_zero_exit_is_reported(self, start: Callable[..., Job]) -> None:
        job = start("import sys\nsys.stderr.write('bad things\\n')\nraise SystemExit(3)\n")
        assert job.wait() == 3
        assert "bad things" in job.sink.text("stderr")

    def test_graceful_cancel_lets_the_script_finish_its_work(self, start: Callable[..., Job]) -> None:
        job = start(SIGNAL_AWARE)
        job.wait_for_output("READY")
        job.handle.cancel("canceled by the test")
        job.wait()
        job.target.collect(job.spec, job.handle)
        assert job.handle.cancel_reason == "canceled by the test"
        assert (job.spec.run_dir / "outputs" / "stopped.txt").read_text() in ("SIGINT", "SIGTERM")

    def test_a_script_that_ignores_signals_is_killed_after_the_grace_period(self, start: Callable[..., Job]) -> None:
        job = start(STUBBORN)
        job.wait_for_output("READY")
        job.handle.cancel("canceled by the test")
        assert job.handle.wait(job.target.cancel_grace_s * 3 + 60) is not None

    def test_forced_cancel_kills_at_once(self, start: Callable[..., Job]) -> None:
        job = start(STUBBORN)
        job.wait_for_output("READY")
        job.handle.cancel("killed by the test", force=True)
        assert job.handle.wait(60) is not None

    def test_cancel_right_after_start_stops_the_job(self, start: Callable[..., Job]) -> None:
        job = start("import time\ntime.sleep(5)\nprint('DONE', flush=True)\n")
        job.handle.cancel("canceled at once")
        job.wait(60)
        assert "DONE" not in job.sink.text()

    def test_collect_brings_outputs_and_logs_back(self, start: Callable[..., Job]) -> None:
        job = start(
            "import os\nos.makedirs('outputs/sub', exist_ok=True)\nos.makedirs('logs', exist_ok=True)\n"
            "open('outputs/sub/a.txt', 'w').write('result')\nopen('logs/own.log', 'w').write('a log')\n"
        )
        assert job.wait() == 0
        job.target.collect(job.spec, job.handle)
        assert (job.spec.run_dir / "outputs" / "sub" / "a.txt").read_text() == "result"
        assert (job.spec.run_dir / "logs" / "own.log").read_text() == "a log"

    def test_cleanup_releases_the_job(self, start: Callable[..., Job]) -> None:
        job = start("print('hi')\n")
        assert job.wait() == 0
        ref = job.handle.ref
        job.target.cleanup(job.spec, job.handle)
        self.assert_cleaned(job.target, job.spec, ref)

    def test_reference_is_small_json(self, start: Callable[..., Job]) -> None:
        job = start("print('hi')\n")
        text = json.dumps(job.handle.ref)
        assert json.loads(text)["kind"] and len(text) < 1024
        job.wait()

    def test_attach_and_stop_from_a_stored_reference(
        self, start: Callable[..., Job], make_target: Callable[[], ComputeTarget], ws: Workspace
    ) -> None:
        job = start(SIGNAL_AWARE)
        job.wait_for_output("READY")
        ref = json.loads(json.dumps(job.handle.ref))  # as stored on the run record
        other = make_target()  # "another process": a fresh target object knows only the reference
        try:
            attached = other.attach(ref, job.spec, RecordingSink(), blobs=ws.blobs)
            assert attached is not None and attached.wait(0) is None
            assert other.stop(ref, grace_s=2) is True
            assert attached.wait(WAIT_S) is not None
            assert job.handle.wait(WAIT_S) is not None  # the original handle sees the end too
            other.collect(job.spec, attached)
            assert (job.spec.run_dir / "outputs" / "stopped.txt").read_text() == "SIGTERM"  # polite first
            assert other.stop(ref, grace_s=2) is False  # nothing left to stop
        finally:
            other.close()
