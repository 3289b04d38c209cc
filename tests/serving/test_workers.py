"""Several workers on one socket, the memory watchdog, graceful stop."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from pathlib import Path

import pytest

from .helpers import save_model

ROW = [5.1, 3.5, 1.4, 0.2]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def test_two_workers_both_serve_and_metrics_add_up(launcher, svc_file):
    server = launcher.start(svc_file.config(workers=2))
    pids: set[int] = set()
    for _ in range(400):  # new connection each time; the kernel hands them to either worker
        pids.add(server.get("/health/live").json()["pid"])
        if len(pids) == 2:
            break
    assert len(pids) == 2
    for _ in range(10):
        assert server.score({"data": [ROW]}).json() == {"predictions": [0]}
    metrics = server.get("/metrics").body.decode()
    assert "mltrain_workers 2" in metrics
    assert 'mltrain_requests_total{path="/score",status="200"} 10' in metrics

    # a worker that dies is restarted; the other one keeps serving meanwhile
    victim = pids.pop()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while "restarting it" not in server.log:
        assert time.monotonic() < deadline, server.log
        assert server.score({"data": [ROW]}).status == 200
    assert f"(pid {victim}) was killed by SIGKILL; restarting it" in server.log
    while len(pids) < 2:
        assert time.monotonic() < deadline, server.log
        pids.add(server.get("/health/live").json()["pid"])
    assert victim not in pids
    assert 'mltrain_worker_restarts_total{reason="exit"} 1' in server.get("/metrics").body.decode()

    ready_file = Path(server.config["ready_file"])
    assert json.loads(ready_file.read_text())["pid"] == server.proc.pid
    assert server.stop() == 0  # graceful: SIGTERM, workers finish, ready file removed
    assert not ready_file.exists()
    for pid in pids:
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), f"worker {pid} outlived the server"


@pytest.fixture(scope="module")
def hog_file(serving_dir, iris, custom):
    X, y = iris
    return save_model(custom.MemoryHog().fit(X.values, y), serving_dir / "hog.joblib", "joblib")


def test_memory_watchdog_kills_an_over_limit_worker_and_the_server_recovers(launcher, hog_file):
    server = launcher.start(hog_file.config(memory_gb=0.6, watchdog_interval_s=0.2))
    pid = server.get("/health/live").json()["pid"]
    assert server.score({"data": [[0, 0, 0, 0]]}).status == 200
    # this request makes the worker hold 1 GiB, over the 0.6 GiB limit; it may be killed before it answers
    try:
        server.score({"data": [[1024, 0, 0, 0]]})
    except (http.client.HTTPException, ConnectionError):
        pass
    deadline = time.monotonic() + 120
    while "memory: workers use" not in server.log:
        assert server.proc.poll() is None, server.log
        assert time.monotonic() < deadline, server.log
        time.sleep(0.1)
    assert f"over the limit memory_gb=0.6; killing worker 0 (pid {pid}," in server.log
    # connections queue on the supervisor's socket while the worker restarts: no refused connection
    resp = server.get("/health/live")
    assert resp.status == 200
    assert resp.json()["pid"] != pid
    assert server.score({"data": [[0, 0, 0, 0]]}).json() == {"predictions": [0]}
    assert 'mltrain_worker_restarts_total{reason="memory"} 1' in server.get("/metrics").body.decode()

    # if the supervisor itself is killed, its workers do not outlive it
    worker = server.get("/health/live").json()["pid"]
    server.proc.kill()
    server.proc.wait()
    deadline = time.monotonic() + 30
    while _alive(worker):
        assert time.monotonic() < deadline, f"worker {worker} outlived its supervisor"
        time.sleep(0.05)
