"""Helpers for the scoring-server tests: HTTP requests, key files, and server processes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support import Response, request  # noqa: F401 - shared HTTP helpers

ROOT = Path(__file__).resolve().parents[2]
PRIMARY_KEY = "primary-key-0123456789"
SECONDARY_KEY = "secondary-key-9876543210"
START_TIMEOUT_S = 180.0  # importing scikit-learn can take a while on a busy 2-core machine


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_keys(path: Path, primary: str, secondary: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"primary": sha256_hex(primary.encode()), "secondary": sha256_hex(secondary.encode())}))
    os.replace(tmp, path)


@dataclass
class Server:
    """A server process started from a config; ``stop()`` sends SIGTERM to its pid."""

    proc: subprocess.Popen[bytes]
    config: dict[str, Any]
    folder: Path
    log_path: Path
    url: str = ""
    port: int = 0

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def score(self, payload: Any, key: str | None = PRIMARY_KEY, **kw: Any) -> Response:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return request(self.url, "POST", "/score", json.dumps(payload).encode(), headers, **kw)

    def get(self, path: str, key: str | None = None) -> Response:
        return request(self.url, "GET", path, headers={"Authorization": f"Bearer {key}"} if key else None)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Launcher:
    """Starts servers from config dicts; every server it started is stopped at the end of the session."""

    def __init__(self, base: Path, pythonpath: str) -> None:
        self.base = base
        self.pythonpath = pythonpath
        self.servers: list[Server] = []
        self.count = 0

    def spawn(self, config: dict[str, Any]) -> Server:
        self.count += 1
        folder = self.base / f"server{self.count}"
        folder.mkdir(parents=True)
        full = {"host": "127.0.0.1", "port": 0, "ready_file": str(folder / "ready.json"), **config}
        (folder / "config.json").write_text(json.dumps(full))
        log_path = folder / "server.log"
        env = {**os.environ, "PYTHONPATH": self.pythonpath}
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mltrain.serving", str(folder / "config.json")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=folder,
            )
        server = Server(proc, full, folder, log_path)
        self.servers.append(server)
        return server

    def wait_ready(self, server: Server) -> Server:
        ready = Path(server.config["ready_file"])
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.exists():
            if server.proc.poll() is not None:
                raise AssertionError(f"server exited with {server.proc.returncode}:\n{server.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready after {START_TIMEOUT_S} s:\n{server.log}")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        server.url, server.port = info["url"], info["port"]
        return server

    def start(self, config: dict[str, Any]) -> Server:
        return self.wait_ready(self.spawn(config))

    def run_to_exit(self, config: dict[str, Any], timeout: float = START_TIMEOUT_S) -> Server:
        """Start a server that is expected to refuse to start; wait for it to exit."""
        server = self.spawn(config)
        try:
            server.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            server.stop()
            raise AssertionError(f"server did not exit:\n{server.log}") from None
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


@dataclass
class ModelFile:
    model: Any
    path: Path
    sha256: str
    format: str

    def config(self, **extra: Any) -> dict[str, Any]:
        return {
            "name": f"ep-{self.path.stem}",
            "model_name": self.path.stem,
            "model_version": "3",
            "model_path": str(self.path),
            "model_sha256": self.sha256,
            "model_format": self.format,
            **extra,
        }


def save_model(model: Any, path: Path, fmt: str) -> ModelFile:
    if fmt == "skops":
        import skops.io as sio

        sio.dump(model, path)
    else:
        import joblib

        joblib.dump(model, path)
    return ModelFile(model, path, sha256_hex(path.read_bytes()), fmt)


class InProcessServer:
    """``create_app(config)`` served by uvicorn on a thread of the test process (real HTTP on 127.0.0.1)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "in-process server did not start"
            time.sleep(0.01)

    def score(self, payload: Any) -> Response:
        return request(self.url, "POST", "/score", json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()
