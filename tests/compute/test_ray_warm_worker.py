"""The warm worker a Ray actor runs (mltrain/compute/ray_warm.py) is plain Python: its node-side
behaviour is checked here without a cluster, in a folder standing for the actor's working_dir."""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import time
from pathlib import Path

import pytest

from mltrain.compute.ray_warm import WarmWorker


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    source = tmp_path / "working_dir"
    source.mkdir()
    (source / "job.py").write_text(
        "import os, sys, time\n"
        "print('args', sys.argv[1:], os.environ['SETTING'], os.getcwd() == os.environ['MLTRAIN_RUN_DIR'], flush=True)\n"
        "sys.stderr.write('to stderr\\n')\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/result.txt', 'w').write(os.environ['MLTRAIN_RUN_ID'])\n"
        "with open('.mltrain/metrics.jsonl', 'a') as f:\n"
        '    f.write(\'{"k": "loss"}\\n\')\n'
        "if '--hold' in sys.argv:\n"
        "    import signal\n"
        "    signal.signal(signal.SIGINT, lambda *a: (open('outputs/stopped.txt', 'w').write('SIGINT'), sys.exit(5)))\n"
        "    print('READY', flush=True)\n"
        "    time.sleep(60)\n"
    )
    monkeypatch.chdir(source)
    w = WarmWorker(["json"], grace_s=1.0, max_output_mb=10)
    assert w.ready()["ready"]
    yield w
    w.shutdown()


def follow(w: WarmWorker, run: str, until: str | None = None, timeout: float = 30) -> tuple[str, str, bytes, dict]:
    offsets, out, err, metrics = [0, 0, 0], b"", b"", b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = w.poll(run, offsets, 0.5)
        assert answer is not None
        a, b, c = answer["data"]
        out, err, metrics = out + a, err + b, metrics + c
        offsets = [o + len(d) for o, d in zip(offsets, answer["data"], strict=True)]
        if until and until in out.decode():
            return out.decode(), err.decode(), metrics, answer
        if answer["exit"] is not None and answer["eof"]:
            return out.decode(), err.decode(), metrics, answer
    raise AssertionError(f"no end within {timeout} s: {out!r}")


def archive_files(w: WarmWorker, run: str, size: int) -> dict[str, bytes]:
    data, offset = b"", 0
    while offset < size:
        piece = w.archive(run, offset)
        data, offset = data + piece, offset + len(piece)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_a_trial_is_forked_in_a_fresh_folder_and_its_files_come_back(worker: WarmWorker) -> None:
    info = worker.start("r1", "exp", "job.py", ["--C", "1"], {"SETTING": "on", "MLTRAIN_RUN_ID": "r1"})
    out, err, metrics, end = follow(worker, "r1")
    assert "args ['--C', '1'] on True" in out and "to stderr" in err
    assert metrics == b'{"k": "loss"}\n'
    assert end["exit"] == 0 and os.getpgid(0) != info["pid"]
    files = archive_files(worker, "r1", end["outputs"]["size"])
    assert files["outputs/result.txt"] == b"r1"
    assert json.loads(files[".mltrain/metrics.jsonl"]) == {"k": "loss"}
    run_dir = info["run_dir"]
    worker.forget("r1")
    assert not os.path.exists(run_dir) and worker.poll("r1", [0, 0, 0], 0) is None
    second = worker.start("r2", "exp", "job.py", [], {"SETTING": "x", "MLTRAIN_RUN_ID": "r2"})
    assert second["run_dir"] != run_dir and follow(worker, "r2")[3]["exit"] == 0


def test_stop_signals_the_trials_group_and_waits(worker: WarmWorker) -> None:
    worker.start("r1", "exp", "job.py", ["--hold"], {"SETTING": "on", "MLTRAIN_RUN_ID": "r1"})
    follow(worker, "r1", until="READY")
    assert worker.status("r1")["exit"] is None  # type: ignore[index]
    assert worker.stop("r1", 1.0, int(signal.SIGINT), True) is True
    _, _, _, end = follow(worker, "r1")
    assert end["exit"] == 5
    assert archive_files(worker, "r1", end["outputs"]["size"])["outputs/stopped.txt"] == b"SIGINT"
    assert worker.stop("r1", 1.0, int(signal.SIGTERM), True) is False  # nothing left to stop


def test_one_trial_at_a_time(worker: WarmWorker) -> None:
    worker.start("r1", "exp", "job.py", ["--hold"], {"SETTING": "on", "MLTRAIN_RUN_ID": "r1"})
    with pytest.raises(RuntimeError, match="still runs r1"):
        worker.start("r2", "exp", "job.py", [], {"SETTING": "on"})
    assert worker.signal("r1", int(signal.SIGKILL))
    assert follow(worker, "r1")[3]["exit"] == -signal.SIGKILL
