"""The warm worker a Ray actor runs (mltrain/remote/ray_warm.py) is plain Python: its node-side
behaviour is checked here without a cluster, in a folder standing for the actor's working_dir."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from mltrain.remote.ray_warm import WarmWorker


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


BOOTED = """
import importlib.util, json, os, sys, time
spec = importlib.util.spec_from_file_location("ray_boot", sys.argv[1])
boot = importlib.util.module_from_spec(spec)
spec.loader.exec_module(boot)
api, snapshot = (open(p, "rb").read() for p in sys.argv[2:4])
w = boot.BootedWarmWorker(api, snapshot, {"SETTING": "from-boot"}, ["json"], 1.0, 10)
info = w.ready()
w.start("run-1", "exp", "job.py", ["--x"], {"MLTRAIN_RUN_ID": "run-1"})
offsets, out = [0, 0, 0], b""
while True:
    answer = w.poll("run-1", offsets, 1.0)
    out += answer["data"][0]
    offsets = [o + len(d) for o, d in zip(offsets, answer["data"])]
    if answer["exit"] is not None and answer["eof"]:
        break
home = w.worker.root
w.shutdown()
print(json.dumps({"code": info["code"], "home": home, "out": out.decode(), "exit": answer["exit"],
                  "left": os.path.exists(home), "mltrain": "mltrain" in sys.modules}))
"""


def test_a_booted_worker_runs_from_the_api_and_snapshot_it_is_sent(tmp_path: Path) -> None:
    """A Python without site-packages (-S: no mltrain installed) serves trials from the two archives."""
    from mltrain.environments.shim import REMOTE_FILES as SHIM_EXTRA
    from mltrain.environments.shim import SHIM_FILES, ensure_shim
    from mltrain.remote import ray_boot

    source = tmp_path / "snapshot"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "data.txt").write_text("from the snapshot")
    (source / "job.py").write_text(
        "import os, sys, mltrain\n"
        "print(open('pkg/data.txt').read(), os.environ['SETTING'], sys.argv[1:], mltrain.__file__)\n"
    )
    (tmp_path / "api.zip").write_bytes(ray_boot.pack_dir(str(ensure_shim(SHIM_FILES + SHIM_EXTRA))))
    (tmp_path / "snapshot.zip").write_bytes(ray_boot.pack_dir(str(source)))
    done = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            BOOTED,
            ray_boot.__file__,
            str(tmp_path / "api.zip"),
            str(tmp_path / "snapshot.zip"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.splitlines()[-1])
    home = got["home"]
    assert got["code"] == f"{home}/api/mltrain/remote/ray_warm.py" and got["mltrain"]
    assert got["exit"] == 0
    assert got["out"] == f"from the snapshot from-boot ['--x'] {home}/api/mltrain/__init__.py\n"
    assert not got["left"]  # shutdown removed the API, the snapshot and the trial's folder


def test_boot_archives_leave_out_symlinks_and_unpack_only_inside_their_folder(tmp_path: Path) -> None:
    from mltrain.remote.ray_boot import pack_dir, unpack

    source = tmp_path / "src"
    source.mkdir()
    (source / "ok.py").write_text("x = 1\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("not to be shipped")
    (source / "link.txt").symlink_to(secret)
    (source / "linkdir").symlink_to(tmp_path)
    with zipfile.ZipFile(io.BytesIO(pack_dir(str(source)))) as zf:
        assert zf.namelist() == ["ok.py"]
    hostile = io.BytesIO()
    with zipfile.ZipFile(hostile, "w") as zf:
        zf.writestr("../escaped.txt", "out")
        zf.writestr("/abs/escaped.txt", "out")
        zf.writestr("fine/in.txt", "in")
    dest = tmp_path / "dest"
    unpack(hostile.getvalue(), str(dest))
    assert not (tmp_path / "escaped.txt").exists() and not Path("/abs/escaped.txt").exists()
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*.txt")) == [
        "abs/escaped.txt",
        "escaped.txt",
        "fine/in.txt",
    ]


def test_ready_asked_after_shutdown_answers_not_ready(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A sweep that ends while an actor is still starting: its ready() call answers, not a traceback."""
    monkeypatch.chdir(tmp_path)
    w = WarmWorker(["json"], grace_s=1.0, max_output_mb=10)
    w.server  # noqa: B018 - the fork server exists
    w.shutdown()
    assert w.ready()["ready"] is False


def test_asking_for_the_node_outside_ray_makes_no_driver() -> None:
    """A warm worker outside a Ray actor (these tests, a plain process where Ray is merely imported) reports
    no node, and never starts a local Ray instance by asking (Ray's runtime context would)."""
    ray = pytest.importorskip("ray")
    from mltrain.remote.ray_warm import _ray_node

    assert _ray_node() == {}
    assert not ray.is_initialized()


def test_a_worker_whose_node_cannot_fetch_the_listed_snapshot_says_so_and_serves_once_it_is_carried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an object-store artifact root the working_dir is the snapshot's list: a node that cannot fetch
    it answers ``unreachable`` (nothing forked), and serves every later trial from the snapshot carried to it."""
    import hashlib

    from mltrain.remote.inputs import SNAPSHOT_FILE
    from mltrain.remote.ray_boot import pack_dir

    monkeypatch.setenv("MLTRAIN_CACHE_DIR", str(tmp_path / "node-cache"))
    script = b"print('carried', flush=True)\n"
    sha = hashlib.sha256(script).hexdigest()
    listed = tmp_path / "working_dir"
    (listed / SNAPSHOT_FILE).parent.mkdir(parents=True)
    hints = {sha: {"url": "http://127.0.0.1:9/unreachable"}}  # the discard port: connection refused
    (listed / SNAPSHOT_FILE).write_text(json.dumps({"files": [["job.py", sha, len(script), 0o644]], "hints": hints}))
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (snapshot / "job.py").write_bytes(script)
    monkeypatch.chdir(listed)
    w = WarmWorker(["json"], grace_s=1.0, max_output_mb=10)
    try:
        answer = w.start("r1", "exp", "job.py", [], {"MLTRAIN_RUN_ID": "r1"})
        assert answer == {"unreachable": "job.py could not be fetched from the artifact root"}
        assert w.poll("r1", [0, 0, 0], 0) is None  # nothing was forked
        w.carry(pack_dir(str(snapshot)))
        for run in ("r1", "r2"):
            w.start(run, "exp", "job.py", [], {"MLTRAIN_RUN_ID": run})
            out, _err, _metrics, end = follow(w, run)
            assert out == "carried\n" and end["exit"] == 0 and end["outputs"]["stored"] == []
    finally:
        w.shutdown()


def test_a_trial_whose_outputs_cannot_be_sent_still_ends_and_says_why(worker: WarmWorker) -> None:
    """The worker's reaper must not die with the trial's outputs: the trial ends with its exit code and the
    reason, so its driver fails it with that reason instead of waiting forever."""
    worker.start("r1", "exp", "job.py", ["--hold"], {"SETTING": "on", "MLTRAIN_RUN_ID": "r1"})
    follow(worker, "r1", until="READY")
    os.mkdir(os.path.join(worker.root, "r1.tar.gz"))  # where the outputs archive is written: it cannot be
    assert worker.stop("r1", 1.0, int(signal.SIGINT), True) is True
    _, _, _, end = follow(worker, "r1")
    assert end["exit"] == 5
    assert "outputs could not be sent from its node" in end["outputs"]["error"]
    assert "Is a directory" in end["outputs"]["error"]
