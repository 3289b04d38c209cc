"""Helpers of the dashboard tests: a workspace with runs, a sweep, artifacts and a model, recorded
through the workspace's own stores; the dashboard served by uvicorn on 127.0.0.1 in a thread."""

from __future__ import annotations

import http.client
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib

from mltrain.registry.store import ModelRegistry
from mltrain.ui.app import UiSettings, create_app
from mltrain.workspace import Workspace, WorkspaceSettings

TOKEN = "test-token-0123456789abcdef"


def ok(server: Any, path: str) -> Any:
    """The JSON answer of GET ``path`` of the dashboard ``server``, which must be a 200."""
    from support import request

    resp = request(server.url, "GET", path)
    assert resp.status == 200, (path, resp.status, resp.body[:300])
    return resp.json()


def ids(page: dict[str, Any]) -> list[str]:
    """The run ids of a page of /api/runs."""
    return [r["id"] for r in page["runs"]]


def png_bytes(width: int = 8, height: int = 8) -> bytes:
    """A small valid PNG (a red square)."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def registry(ws: Workspace) -> ModelRegistry:
    return ModelRegistry(ws.db, ws.blobs)


def open_ws(root: Path, db_url: str | None = None) -> Workspace:
    return Workspace(WorkspaceSettings.resolve(str(root), db_url))


def finished_run(
    ws: Workspace,
    run_id: str,
    experiment: str,
    args: dict[str, Any],
    metrics: dict[str, list[float]],
    parent: str | None = None,
    status: str = "Completed",
    tags: dict[str, str] | None = None,
) -> str:
    """A run recorded as the driver does (created, Running, metrics, ended), with ``args`` as its
    job.arguments and ``metrics`` as series of numeric scalars (step = index)."""
    from mltrain.workspace.runs import RUNNING

    argv = [x for k, v in args.items() for x in (f"--{k}", str(v))]
    ws.runs.create(
        run_id,
        experiment,
        parent_run_id=parent,
        config={"job": {"arguments": args}, "experiment_name": experiment},
        overrides=[f"job.arguments.{k}={v}" for k, v in args.items()],
        script="train.py",
        arguments=argv,
        compute="local",
        env_name="system",
    )
    ws.runs.set_status(run_id, RUNNING)
    t0 = time.time()
    records = [
        {"t": t0 + i * 0.01, "k": key, "v": value, "s": i}
        for key, values in metrics.items()
        for i, value in enumerate(values)
    ]
    records.append({"t": t0, "k": "kernel", "v": str(args.get("kernel", "rbf"))})
    ws.metrics.add(run_id, records)
    if tags:
        ws.runs.set_tags(run_id, tags)
    ws.runs.set_status(run_id, status, exit_code=0 if status == "Completed" else 1)
    return run_id


def running_run(root: Path, run_id: str, log: str | None = None) -> tuple[Workspace, Path]:
    """A run recorded as Running in the workspace at ``root``; its run folder (beside ``root``) holds the
    output log ``log`` when given. Returns the open workspace and the run folder."""
    from mltrain.workspace.runs import RUNNING

    ws = open_ws(root)
    run_dir = root.parent / f"rundir-{run_id}"
    (run_dir / "logs").mkdir(parents=True)
    if log is not None:
        (run_dir / "logs" / "std_log.txt").write_text(log)
    ws.runs.create(run_id, "live", script="train.py", run_dir=str(run_dir))
    ws.runs.set_status(run_id, RUNNING)
    return ws, run_dir


def add_artifact(ws: Workspace, run_id: str, path: str, data: bytes) -> None:
    sha = ws.blobs.put_bytes(data)
    ws.runs.add_artifacts(run_id, [(path, sha, len(data))])


def seed(root: Path, db_url: str | None = None) -> dict[str, Any]:
    """Two experiments, a tagged run with an image and a CSV, a failed run, and a sweep of six
    children over (C, kernel); returns their ids."""
    ws = open_ws(root, db_url)
    a = finished_run(ws, "20260101_000001_aaaaaa", "iris", {"C": 1.0, "kernel": "rbf"},
                     {"accuracy": [0.5, 0.8, 0.93], "loss": [1.0, 0.4, 0.2]}, tags={"stage": "baseline"})  # fmt: skip
    b = finished_run(ws, "20260101_000002_bbbbbb", "iris", {"C": 0.1, "kernel": "linear"},
                     {"accuracy": [0.4, 0.7], "loss": [1.2, 0.6]}, status="Failed")  # fmt: skip
    c = finished_run(ws, "20260101_000003_cccccc", "digits", {"C": 3.0, "kernel": "poly"}, {"accuracy": [0.6, 0.97]})
    add_artifact(ws, a, "outputs/confusion.png", png_bytes())
    add_artifact(ws, a, "outputs/predictions.csv", b"label,predicted\n0,0\n1,2\n2,2\n")
    add_artifact(ws, a, "logs/std_log.txt", b"epoch 1\nepoch 2\n")
    sweep = finished_run(ws, "20260101_000010_sweep0", "tuning", {}, {})
    ws.runs.set_tags(sweep, {"mltrain.sweep": "parent", "mltrain.sweep.sampler": "grid",
                             "mltrain.sweep.primary_metric": "accuracy", "mltrain.sweep.goal": "maximize"})  # fmt: skip
    children = []
    for i, (c_value, kernel) in enumerate(
        [(0.1, "rbf"), (1.0, "rbf"), (10.0, "rbf"), (0.1, "linear"), (1.0, "linear"), (10.0, "linear")]
    ):
        acc = 0.6 + 0.03 * i
        child = finished_run(
            ws,
            f"20260101_00002{i}_child{i}",
            "tuning",
            {"C": c_value, "kernel": kernel},
            {"accuracy": [acc - 0.2, acc], "loss": [1.0, 1 - acc]},
            parent=sweep,
        )
        params = {"job.arguments.C": c_value, "job.arguments.kernel": kernel}
        ws.runs.set_tags(child, {"mltrain.sweep": sweep, "mltrain.sweep.trial": str(i),
                                 "mltrain.sweep.params": json.dumps(params)})  # fmt: skip
        children.append(child)
    counters = {"children_completed": 6, "children_failed": 0, "best_accuracy": 0.75}
    ws.metrics.add(sweep, [{"t": time.time(), "k": k, "v": v} for k, v in counters.items()])
    model_file = root.parent / "model.joblib"
    joblib.dump({"weights": [1, 2, 3]}, model_file)  # a joblib file (name and content must agree), never loaded
    registry(ws).register("iris-model", model_file, run_id=a, tags={"data": "v1"})
    registry(ws).register("iris-model", model_file, run_id=c)
    ws.db.dispose()
    return {"a": a, "b": b, "c": c, "sweep": sweep, "children": children}


class UiServer:
    """The dashboard on 127.0.0.1 (a free port) in a thread of this process, served by uvicorn."""

    def __init__(self, root: Path, settings: UiSettings, db_url: str | None = None) -> None:
        import uvicorn

        from mltrain.ui.server import bind, uvicorn_config

        self.ws = open_ws(root, db_url)
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn_config(create_app(self.ws, settings), "127.0.0.1", self.port))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> UiServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the dashboard did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
        self.ws.db.dispose()


@contextmanager
def serving(root: Path, db_url: str | None = None, **settings: Any) -> Iterator[UiServer]:
    hosts = ("127.0.0.1", "localhost", "::1", "[::1]")
    with UiServer(root, UiSettings(hosts=hosts, **settings), db_url) as server:
        yield server


class UiProcess:
    """``mltrain ui`` started as a command: its process, URL, what it printed, and after stopping its stderr."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        lines = [proc.stdout.readline() for _ in range(2)] if proc.stdout else []
        while lines and lines[-1] and "Ctrl-C stops it" not in lines[-1]:
            lines.append(proc.stdout.readline())  # type: ignore[union-attr]
        self.output = "".join(lines)
        if " at http://" not in lines[0]:
            proc.kill()
            raise RuntimeError("mltrain ui did not start: " + self.output + proc.communicate()[1])
        self.url = lines[0].split(" at ")[1].split("?")[0].strip().rstrip("/")
        self.stderr = ""
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:  # it listens before it prints; this waits until it answers
            conn.request("GET", "/api/info")
            conn.getresponse().read()
        finally:
            conn.close()


@contextmanager
def start_ui(root: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[UiProcess]:
    """``mltrain --workspace ROOT ui --port 0 ARGS`` as a process; stopped with Ctrl-C (SIGINT) at the end,
    which must end it with exit code 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mltrain.cli.main", "--workspace", str(root), "ui", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    try:
        ui = UiProcess(proc)
        yield ui
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    ui.output += out
    ui.stderr = err
    assert proc.returncode == 0, err
    assert "dashboard stopped" in err


XSS = '<img src=x onerror="window.__xss=1">'
ENV_HASH = "e" * 64


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_pages(root: Path) -> dict[str, Any]:
    """``seed`` and what the other pages show: a failed run with a long multi-line error, single values,
    text artifacts in folders and names holding HTML (and one of run c's in a folder named ``__proto__``);
    an environment record the runs used; an endpoint record serving iris-model:2 at a loopback port where
    nothing listens; the data assets of ``seed_data``."""
    from sqlalchemy import insert

    from mltrain.workspace import tables as t
    from mltrain.workspace.endpoints import EndpointStore

    ids = seed(root)
    ws = open_ws(root)
    d = finished_run(ws, "20260101_000004_dddddd", "iris", {"C": 2.0, "kernel": "rbf", XSS: 1, "solver": "lbfgs"},
                     {"accuracy": [0.123456789012, 0.5, 0.7, 0.72], "n_features": [4.0], XSS: [1.0, 2.0]},
                     status="Failed", tags={XSS: XSS, "mltrain.internal": "x"})  # fmt: skip
    error = 'Traceback (most recent call last):\n  File "train.py", line 3\n' + "ValueError: " + "x" * 400 + "\nthe end"
    ws.runs.update(d, error=error, env_hash=ENV_HASH)
    ws.runs.update(ids["a"], env_hash=ENV_HASH)
    files = {
        "outputs/report.md": b"# Report\n\n- accuracy 0.93\n- loss 0.2\n\n```\ncode <b>x</b>\n```\n",
        "outputs/metrics.json": b'{"accuracy": 0.93, "html": "<b>bold</b>"}',
        "outputs/config.yaml": b"C: 1.0\nkernel: rbf\n",
        "outputs/plots/curve.png": png_bytes(64, 48),
        "logs/notes.txt": b"line 1\nline 2\n",
        "outputs/table.csv": b"a,b\n1,2\n3,4\n",
    }
    for path, data in files.items():
        add_artifact(ws, d, path, data)
    add_artifact(ws, ids["c"], "__proto__/polluted.txt", b"a folder named as a JavaScript object's own key\n")
    with ws.db.write() as conn:
        conn.execute(insert(t.environments).values(
            hash=ENV_HASH, builder="venv", name="sklearn", version="1.5", python="3.11",
            spec=json.dumps({"name": "sklearn", "pip": ["scikit-learn"], "lock": "scikit-learn==1.5.2\n"}),
            location=str(root.parent / "no-venv"), size_bytes=1234, created_at=1.7e9, last_used_at=1.7e9))  # fmt: skip
    EndpointStore(ws).save("iris-ep", model_name="iris-model", model_version=2, target="local", state="Running",
                           uri=f"http://127.0.0.1:{closed_port()}", auth=True, cpu=1.0, workers=1)  # fmt: skip
    registry(ws).set_alias("iris-model", 2, "production")
    registry(ws).set_alias("iris-model", 1, "staging")
    ws.db.dispose()
    return {**ids, "d": d, "data": seed_data(root, {**ids, "d": d})}


XSS_FILE = XSS + ".csv"  # a file name holding HTML (no '/': a valid name)
MANY_FILES = 1205


def seed_data(root: Path, ids: dict[str, Any], db_url: str | None = None) -> dict[str, Any]:
    """Data assets made by ``mltrain.data.create.create`` from real folders beside ``root``, linked to the
    runs of ``seed_pages`` through the store (as jobs will link them): ``iris-train`` 1 and 2 (HTML in its
    description, tags and a file name; folders named ``__proto__`` and ``constructor``; ``@prod`` on 2),
    read by runs a (→ iris-model:1) and c (→ iris-model:2); ``features`` 1 written by run d and read by a;
    ``many`` with MANY_FILES files; ``old`` archived; ``ref`` a ``file://`` reference (not stored)."""
    from mltrain.data.create import create

    ws = open_ws(root, db_url)
    src = root.parent / "data-src"
    files = {"train.csv": "a,b\n1,2\n", "sub/part-0.csv": "a,b\n3,4\n", XSS_FILE: "x\n",
             "__proto__/a.csv": "p\n", "constructor/b.csv": "c\n"}  # fmt: skip
    for rel, text in files.items():
        (src / "train" / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / "train" / rel).write_text(text)
    train1 = create(ws, "iris-train", src / "train", description=f"iris rows {XSS}", tags={XSS: XSS, "split": "train"})
    (src / "train" / "extra.csv").write_text("a,b\n5,6\n")
    train2 = create(ws, "iris-train", src / "train", tags={"split": "train"})
    ws.data.set_alias("iris-train", 2, "prod")
    (src / "features").mkdir()
    (src / "features" / "features.parquet").write_bytes(b"PAR1" + bytes(100))
    features = create(ws, "features", src / "features", producer_run_id=ids["d"])
    ws.data.link_run(ids["d"], "output", "features", version=features)
    ws.data.link_run(ids["a"], "input", "train", version=train1, mode="download")
    ws.data.link_run(ids["a"], "input", "features", version=features, mode="mount")
    ws.data.link_run(ids["c"], "input", "train", version=train2, mode="mount")
    ws.data.link_run(ids["c"], "input", "lookup", uri="https://example.org/lookup.csv", mode="direct")
    (src / "many").mkdir()
    for i in range(MANY_FILES):
        (src / "many" / f"part-{i:05d}.csv").write_text(f"{i}\n")
    create(ws, "many", src / "many")
    create(ws, "old", src / "features")
    ws.data.set_archived("old", 1)
    ref = create(ws, "ref", (src / "features").as_uri())
    ws.db.dispose()
    return {"train1": train1, "train2": train2, "features": features, "ref": ref}
