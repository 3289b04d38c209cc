"""Pre-warmed fork servers: start a job without paying interpreter and heavy-import start-up each time.

A :class:`ForkServerPool` keeps one server process per worker, each run by the environment's own
Python with the heavy modules the script imports already imported (``forkserver_main.py``). A job
started through a server is still a process of its own — a fresh fork of the clean, warm server —
with its own process group, working directory, argv, environment, stdout/stderr and exit status;
its reference is the same as a local job's (process group + start token), so cancel and recovery
work unchanged. Used by sweeps (``sweep.prewarm``); single runs start with ``Popen``.
"""

from __future__ import annotations

import json
import os
import queue
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from mltrain.remote.forkserver_main import die_with_parent

SERVER_FILE = Path(__file__).with_name("forkserver_main.py")
READY_TIMEOUT_S = 120.0


class ForkServer:
    """One server process (started at once, ready when its imports are done)."""

    def __init__(self, python: str, environ: dict[str, str], modules: list[str], boot: list[str] | None = None) -> None:
        """``boot``: the interpreter arguments that run ``forkserver_main`` (default: its file)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        self.proc = subprocess.Popen(
            [python, *(boot or [str(SERVER_FILE)]), str(theirs.fileno()), json.dumps(modules)],
            pass_fds=[theirs.fileno()],
            env=environ,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the jobs through the driver, not directly
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
        theirs.close()
        self.ready: bool | None = None
        self.info: dict[str, Any] = {}

    def _recv(self, timeout: float | None) -> dict[str, Any] | None:
        """The next message, None after ``timeout``; {} when the server is gone (or was closed)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], timeout)
        except (OSError, ValueError):  # closed meanwhile (fileno -1): a warm worker shutting down
            return {}
        if not readable:
            return None
        try:
            data = self.sock.recv(1 << 16)
        except OSError:
            return {}
        return json.loads(data) if data else {}

    def wait_ready(self) -> bool:
        if self.ready is None:
            msg = self._recv(READY_TIMEOUT_S)
            self.ready = bool(msg and msg.get("ready"))
            self.info = msg or {}
        return self.ready

    def fork(self, script: str, argv: list[str], cwd: Path, environ: dict[str, str]) -> tuple[int, int, int] | None:
        """Fork a job (``script`` with ``argv`` in ``cwd``): (its pid, read ends of its stdout and
        stderr); None when the server cannot (the caller starts the job another way)."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        request = {"script": script, "argv": argv, "cwd": str(cwd), "env": environ}
        try:
            pid = self.send(request, out_w, err_w)
        finally:
            os.close(out_w)
            os.close(err_w)
        if pid is None:
            os.close(out_r)
            os.close(err_r)
            return None
        return pid, out_r, err_r

    def send(self, request: dict[str, Any], out_fd: int, err_fd: int) -> int | None:
        """Ask the server to fork the job ``request`` (``script``, ``argv``, ``cwd``, ``env``) with its
        stdout and stderr on ``out_fd`` and ``err_fd`` (the caller still closes its copies): the job's
        pid once it leads its own process group, None when the server cannot."""
        try:
            socket.send_fds(self.sock, [json.dumps(request).encode()], [out_fd, err_fd])
            msg = self._recv(30.0)
        except OSError:
            msg = None
        if not msg or "pid" not in msg:
            self.ready = False
            return None
        return int(msg["pid"])

    def wait_exit(self, timeout: float | None) -> int | None:
        """The exit code of the forked job (negative: killed by that signal) once it ended, else None
        after ``timeout``; -SIGTERM when the server itself is gone (the job got SIGTERM with it)."""
        msg = self._recv(timeout)
        if msg is None:
            return None
        if "exit" in msg:
            return int(msg["exit"])
        self.ready = False
        return -int(signal.SIGTERM)

    def close(self) -> None:
        self.sock.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class ForkServerPool:
    """``size`` fork servers of one interpreter; a server serves one job at a time."""

    def __init__(
        self, python: str, environ: dict[str, str], modules: list[str], size: int, boot: list[str] | None = None
    ) -> None:
        self.python = python
        self.modules = modules
        self._idle: queue.SimpleQueue[ForkServer] = queue.SimpleQueue()
        self.servers = [ForkServer(python, environ, modules, boot) for _ in range(max(1, size))]
        for server in self.servers:
            self._idle.put(server)

    def acquire(self) -> ForkServer | None:
        """An idle, ready server, or None (none idle, or it failed to start)."""
        try:
            server = self._idle.get_nowait()
        except queue.Empty:
            return None
        if server.wait_ready():
            return server
        return None

    def release(self, server: ForkServer) -> None:
        if server.ready:
            self._idle.put(server)

    def close(self) -> None:
        for server in self.servers:
            server.close()
