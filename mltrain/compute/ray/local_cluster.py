"""``compute.address: local``: a private single-node Ray cluster for trying the cluster target out.

mltrain starts ``ray start --head --block`` itself on first use in a process, with token
authentication on (a fresh token, given to Ray through the environment only: never printed, on a
command line or stored), bound to loopback (node and dashboard on 127.0.0.2: Ray rewrites the literal
127.0.0.1 a driver connects to into the machine's external address), with free ports
and a temporary folder of its own, and stops it by SIGTERM to that PID when the invocation ends
(the last user releases it, or at exit). Every target of the process shares the one cluster.
``ray start`` runs under a small watchdog (this module's ``__main__``) that stops it the same way
when mltrain itself dies without cleaning up (SIGKILL, OOM).
"""

from __future__ import annotations

import atexit
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from mltrain.errors import ComputeError
from mltrain.remote.procs import descendants

NODE_IP = "127.0.0.2"  # loopback, but not the literal Ray rewrites to the external address
READY_LINE = "Ray runtime started"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0
OBJECT_STORE_BYTES = 300_000_000  # keeps /dev/shm small; jobs pass data through files, not the object store
WORKER_PORTS = 100


def ray_command() -> str:
    """The ``ray`` command next to this interpreter (else the one on PATH)."""
    found = Path(sys.executable).parent / "ray"
    if found.exists():
        return str(found)
    which = shutil.which("ray")
    if which is None:
        raise ComputeError(
            "compute.address=local needs Ray on this machine", hint="pip install 'mltrain[cluster]' (ray[default])"
        )
    return which


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on loopback now (the kernel's choice)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((NODE_IP, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((NODE_IP, port))
        except OSError:
            return False
    return True


def _worker_port_block(size: int = WORKER_PORTS) -> int:
    """The first port of ``size`` consecutive free ports for Ray's workers (in Ray's default range,
    below the kernel's ephemeral ports)."""
    for _ in range(50):
        base = random.randint(10002, 19999 - size)  # noqa: S311 - not a secret
        if all(_bindable(p) for p in range(base, base + size)):
            return base
    raise ComputeError("found no free block of ports for the private Ray cluster's workers")


class LocalRayCluster:
    """One private head node; :meth:`start` once, :meth:`stop` once (idempotent)."""

    def __init__(self) -> None:
        # short: Ray's unix sockets live under its temp dir and their paths must stay < 108 characters
        self.root = Path(tempfile.mkdtemp(prefix="mlray-local-", dir="/tmp"))
        self.token = secrets.token_hex(32)
        self.proc: subprocess.Popen[bytes] | None = None
        gcs, dashboard, client, *agents = _free_ports(9)
        self.gcs_port, self.dashboard_port, self.client_port, self._agent_ports = gcs, dashboard, client, agents
        self.dashboard_url = f"http://{NODE_IP}:{dashboard}"

    @property
    def log_path(self) -> Path:
        return self.root / "head.log"

    def env(self) -> dict[str, str]:
        """The environment of the head (and so of its jobs): token authentication on, our token."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(
            {
                "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN": self.token,
                "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # one node: Ray keeps the loopback address
                "RAY_raylet_start_wait_time_s": "180",  # agents' imports can be slow on a loaded machine
                "TMPDIR": str(self.root / "tmp"),
            }
        )
        return env

    def start(self, log: Callable[[str], None] | None = None) -> LocalRayCluster:
        """Start the head and wait until its job server accepts our token."""
        (self.root / "tmp").mkdir(exist_ok=True)
        manager, objects, agent, agent_grpc, runtime_env, metrics = self._agent_ports
        workers = _worker_port_block()
        args = [
            ray_command(),
            "start",
            "--head",
            "--block",
            f"--node-ip-address={NODE_IP}",
            f"--port={self.gcs_port}",
            f"--dashboard-host={NODE_IP}",
            f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={self.client_port}",
            f"--node-manager-port={manager}",
            f"--object-manager-port={objects}",
            f"--dashboard-agent-listen-port={agent}",
            f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--runtime-env-agent-port={runtime_env}",
            f"--metrics-export-port={metrics}",
            f"--min-worker-port={workers}",
            f"--max-worker-port={workers + WORKER_PORTS - 1}",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            f"--temp-dir={self.root / 'ray'}",
            "--disable-usage-stats",
        ]
        if log is not None:
            log(f"starting a private Ray cluster (one node on {NODE_IP}, token authentication on) in {self.root}")
        started = time.monotonic()
        watch = [sys.executable, "-m", "mltrain.compute.ray.local_cluster", str(os.getpid()), str(self.root)]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [*watch, *args],
                env=self.env(),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches mltrain, which stops the jobs, then the cluster
            )
        try:
            self._wait_ready(started + START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        if log is not None:
            log(f"private Ray cluster ready in {time.monotonic() - started:.1f} s (dashboard {self.dashboard_url})")
        return self

    def _wait_ready(self, deadline: float) -> None:
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise ComputeError(f"the private Ray cluster did not start (exit {self.proc.returncode}):\n{tail}")
            if READY_LINE in self.log_path.read_text(errors="replace") and self._job_server_up():
                return
            time.sleep(0.3)
        raise ComputeError(f"the private Ray cluster did not start within {START_TIMEOUT_S:g} s (log: {self.log_path})")

    def _job_server_up(self) -> bool:
        req = urllib.request.Request(
            f"{self.dashboard_url}/api/jobs/mltrain-auth-probe", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=5):  # noqa: S310 - our own loopback server
                return True
        except urllib.error.HTTPError as exc:
            return exc.code == 404  # authenticated, no such job: the job server runs
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM the head's ``ray start`` (it drains its own processes), then remove its folder;
        processes of it that outlive it (by PID, found by its folder) get SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is not None:
            family = descendants(proc.pid)
            for _ in range(2):
                if proc.poll() is not None:
                    break
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    pass
            for pid in family:
                if _ours(pid, self.root):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        shutil.rmtree(self.root, ignore_errors=True)


def _ours(pid: int, root: Path) -> bool:
    """Whether ``pid`` (still) is a process of the cluster in ``root`` (its command line or TMPDIR)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(root).encode() in cmdline or f"TMPDIR={root / 'tmp'}".encode() in environ


_lock = threading.Lock()
_shared: LocalRayCluster | None = None
_users = 0


def acquire(log: Callable[[str], None] | None = None) -> LocalRayCluster:
    """The process's private cluster, started on first use; pair with :func:`release`."""
    global _shared, _users
    with _lock:
        if _shared is None:
            cluster = LocalRayCluster()
            atexit.register(cluster.stop)  # whatever happens to the users, it ends with the process
            _shared = cluster.start(log)
        _users += 1
        return _shared


def release() -> None:
    """One user is done; the last one stops the cluster."""
    global _shared, _users
    with _lock:
        _users = max(0, _users - 1)
        if _users or _shared is None:
            return
        cluster, _shared = _shared, None
    cluster.stop()


def current() -> LocalRayCluster | None:
    """The private cluster this process runs now, if any."""
    return _shared


def watch(parent: int, root: Path, command: list[str]) -> int:
    """Run ``command`` (``ray start --block ...``) until it ends; SIGTERM it when we get SIGTERM/SIGINT
    or when ``parent`` (the mltrain process) is gone, and then remove the cluster's folder ``root``
    in its place. Its exit code."""
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)  # before the child starts: a stop right away is not lost
    signal.signal(signal.SIGINT, on_signal)
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    signaled = 0
    family: list[int] = []
    while child.poll() is None:
        if (stopping.is_set() or os.getppid() != parent) and signaled < 2:
            family = family or descendants(os.getpid())  # listed while they are still ours
            child.send_signal(signal.SIGTERM)  # it drains its own processes
            signaled += 1
            try:
                child.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                continue
        time.sleep(0.5)
    if os.getppid() != parent:  # mltrain died without stopping us: what it would have done
        for pid in family:
            if _ours(pid, root):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(root, ignore_errors=True)
    return child.returncode or 0


if __name__ == "__main__":
    sys.exit(watch(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]))
