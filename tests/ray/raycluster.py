"""A real two-node Ray cluster on loopback with token authentication on (tests and bench/ray_bench.py).

Head on 127.0.0.2, one worker node on 127.0.0.3 (custom resource ``worker_node``), one CPU each, a
small object store, fixed ports. Every process that touches the cluster gets :meth:`RayCluster.env`
(token authentication on, the token file, no usage stats, a private TMPDIR). Nodes are started with
``ray start --block`` and stopped by SIGTERM to that PID (worker first, then head) — never the broad stop command.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mltrain.remote.procs import descendants

HEAD_IP = "127.0.0.2"
WORKER_IP = "127.0.0.3"
GCS_PORT = 26379
DASHBOARD_PORT = 28265
CLIENT_PORT = 20001
DASHBOARD_URL = f"http://127.0.0.1:{DASHBOARD_PORT}"
GCS_ADDRESS = f"{HEAD_IP}:{GCS_PORT}"
CLIENT_ADDRESS = f"ray://{HEAD_IP}:{CLIENT_PORT}"
OBJECT_STORE = "300000000"
# compute options that keep runs on the worker node (two at a time, as two warm actors need)
ON_THE_WORKER_NODE = {"num_cpus": 0.5, "resources": {"worker_node": 0.5}}


def ray_bin() -> str | None:
    """The ``ray`` command of the interpreter running this (None when Ray is not installed)."""
    found = Path(sys.executable).parent / "ray"
    return str(found) if found.exists() else shutil.which("ray")


class RayCluster:
    """Start with :meth:`start`, stop with :meth:`stop`; ``worker`` can be killed and restarted."""

    def __init__(self, root: Path | None = None) -> None:
        # short: Ray's unix sockets live under the temp dir and their paths must stay < 108 characters
        self.root = root or Path(tempfile.mkdtemp(prefix="mlray-", dir="/tmp"))
        self.token_file = self.root / "auth_token"
        self.tmp = self.root / "tmp"
        self.head: subprocess.Popen[bytes] | Started | None = None
        self.worker: subprocess.Popen[bytes] | Started | None = None
        self.dashboard_url = DASHBOARD_URL
        self.gcs_address = GCS_ADDRESS
        self.client_address = CLIENT_ADDRESS

    @classmethod
    def running(cls, root: Path) -> RayCluster:
        """The cluster started earlier in ``root`` (its PIDs are in ``root/pids.json``)."""
        cluster = cls(root)
        pids = json.loads((root / "pids.json").read_text())
        cluster.head, cluster.worker = Started(pids["head"]), Started(pids["worker"])
        return cluster

    def _save_pids(self) -> None:
        pids = {"head": self.head.pid if self.head else None, "worker": self.worker.pid if self.worker else None}
        (self.root / "pids.json").write_text(json.dumps(pids))

    @property
    def env(self) -> dict[str, str]:
        """The environment variables of every process that touches the cluster."""
        return {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_file),
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
            "TMPDIR": str(self.tmp),
        }

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(self.env)
        # the nodes' `python` (a job's entrypoint; `environment=system` runs on it) is this interpreter, as
        # on a node where Ray was started from an activated venv
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        # the raylet waits raylet_start_wait_time_s for its agents to report their ports; their start (Python
        # imports) can take longer than the default on a loaded 2-core machine
        env["RAY_raylet_start_wait_time_s"] = "180"
        log = open(self.root / log_name, "ab")  # noqa: SIM115 - the child keeps it
        try:
            return subprocess.Popen(
                [ray_bin() or "ray", "start", "--block", *args, "--disable-usage-stats"],
                env=env,
                cwd=self.root,  # not the caller's folder: a test's folder is deleted while the node lives on
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    def _wait_for(
        self, proc: subprocess.Popen[bytes] | Started, log_name: str, marker: str, since: int = 0, timeout: float = 120
    ) -> None:
        log = self.root / log_name
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")[since:] if log.exists() else ""
            if marker in text:
                return
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"ray start did not print {marker!r} within {timeout} s:\n{log.read_text()[-3000:]}")

    def start(self) -> RayCluster:
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.token_file.write_text(secrets.token_hex(32))
        self.token_file.chmod(0o600)
        self.head = self._spawn(
            [
                "--head",
                f"--node-ip-address={HEAD_IP}",
                f"--port={GCS_PORT}",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={DASHBOARD_PORT}",
                f"--ray-client-server-port={CLIENT_PORT}",
                "--node-manager-port=26380",
                "--object-manager-port=26381",
                "--dashboard-agent-listen-port=26382",
                "--dashboard-agent-grpc-port=26383",
                "--runtime-env-agent-port=26384",
                "--metrics-export-port=26385",
                "--min-worker-port=27000",
                "--max-worker-port=27099",
                "--num-cpus=1",
                f"--object-store-memory={OBJECT_STORE}",
                f"--temp-dir={self.root / 'raytmp'}",
            ],
            "head.log",
        )
        try:
            self._wait_for(self.head, "head.log", "Ray runtime started", timeout=300)  # a loaded machine: slow
            self.start_worker()
        except BaseException:
            self.stop(keep=True)
            raise
        return self

    def start_worker(self, attempts: int = 3) -> None:
        """Start (or restart) the worker node and wait until the cluster sees it. On a loaded
        machine a node may time out while its agents start: it is then started again."""
        for attempt in range(attempts):
            try:
                self._start_worker()
                return
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                if self.worker is not None:
                    _stop(self.worker)

    def _start_worker(self) -> None:
        log = self.root / "worker.log"
        since = len(log.read_text(errors="replace")) if log.exists() else 0
        self.worker = self._spawn(
            [
                f"--address={GCS_ADDRESS}",
                f"--node-ip-address={WORKER_IP}",
                "--node-manager-port=26390",
                "--object-manager-port=26391",
                "--dashboard-agent-listen-port=26392",
                "--dashboard-agent-grpc-port=26393",
                "--runtime-env-agent-port=26394",
                "--metrics-export-port=26395",
                "--min-worker-port=27100",
                "--max-worker-port=27199",
                "--num-cpus=1",
                '--resources={"worker_node":1}',
                f"--object-store-memory={OBJECT_STORE}",
            ],
            "worker.log",
        )
        self._save_pids()
        self._wait_for(self.worker, "worker.log", "Ray runtime started", since)
        self.wait_for_nodes(2)

    def api(self, path: str) -> dict:
        """The dashboard's JSON answer to ``GET path``, asked with the cluster's token."""
        import urllib.request

        req = urllib.request.Request(
            f"{self.dashboard_url}{path}",
            headers={"Authorization": f"Bearer {self.token_file.read_text().strip()}"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def alive_nodes(self) -> list[dict]:
        """The alive nodes, as the dashboard's node list reports them."""
        summary = self.api("/nodes?view=summary").get("data", {}).get("summary", [])
        return [n for n in summary if (n.get("raylet") or {}).get("state") == "ALIVE"]

    def wait_for_nodes(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if len(self.alive_nodes()) == count:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not reach {count} alive nodes within {timeout} s")
            time.sleep(0.5)

    def raylet_pid(self, node_ip: str = WORKER_IP) -> int:
        """The PID of the raylet of the node at ``node_ip`` (a child of its ``ray start``)."""
        proc = self.worker if node_ip == WORKER_IP else self.head
        assert proc is not None
        for pid in descendants(proc.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"/raylet") and f"--node_ip_address={node_ip}".encode() in cmdline:
                return pid
        raise RuntimeError(f"no raylet found for {node_ip}")

    def kill_worker_raylet(self) -> None:
        """SIGKILL the worker node's raylet (the node dies); its ``ray start --block`` then ends."""
        assert self.worker is not None
        family = descendants(self.worker.pid)
        os.kill(self.raylet_pid(WORKER_IP), signal.SIGKILL)
        try:
            self.worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            _stop(self.worker)
        _kill_left(family)

    def stop(self, keep: bool = False) -> None:
        for proc in (self.worker, self.head):
            if proc is not None:
                _stop(proc)
        _reap_orphans(self.root)
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes] | Started, timeout: float = 60) -> None:
    """SIGTERM to a ``ray start --block`` (it drains its own children); once more if it lingers."""
    for _ in range(2):
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass


class Started:
    """A ``ray start`` of a cluster started by an earlier process (MLTRAIN_TEST_RAY_CLUSTER): by PID."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return 0
        return 0 if state == "Z" else None

    def send_signal(self, sig: int) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("ray start", timeout or 0)
            time.sleep(0.2)
        return 0


def _kill_left(pids: list[int]) -> None:
    """SIGKILL those of ``pids`` (a stopped node's processes, listed while it ran) still alive."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _ancestors(pid: int) -> set[int]:
    out = {pid}
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
        out.add(pid)
    return out


def _reap_orphans(root: Path) -> None:
    """SIGKILL, by PID, processes of this cluster left behind (their command line names its folder)."""
    spare = _ancestors(os.getpid())  # this process and those that started it
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in spare:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if str(root).encode() in cmdline or f"TMPDIR={root / 'tmp'}".encode() in environ.split(b"\0"):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def jobs_client(cluster: RayCluster) -> object:
    """Ray's own Job Submission client of the test cluster, with its token."""
    from ray.job_submission import JobSubmissionClient

    token = cluster.token_file.read_text().strip()
    return JobSubmissionClient(cluster.dashboard_url, headers={"Authorization": f"Bearer {token}"})
