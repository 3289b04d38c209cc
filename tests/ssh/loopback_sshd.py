"""Real sshd processes on loopback addresses for the SSH tests and benchmark (started as
../shared RECIPES shows, stopped by PID). Each host gets its own mltrain folder (``workdir``), as
separate machines would have."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mltrain.remote.procs import descendants

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port(addr: str) -> int:
    with socket.socket() as s:
        s.bind((addr, 0))
        return int(s.getsockname()[1])


@dataclass
class Host:
    addr: str
    port: int
    folder: Path
    proc: subprocess.Popen[bytes]
    host_key_pub: str
    client_key: Path
    workdir: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def entry(self, **changes: Any) -> dict[str, Any]:
        """This host as a ``compute.hosts`` entry."""
        base = {
            "host": self.addr,
            "port": self.port,
            "user": "root",
            "key_file": str(self.client_key),
            "slots": 2,
            "workdir": str(self.workdir),
        }
        return {**base, **changes}

    def known_hosts_line(self) -> str:
        return f"[{self.addr}]:{self.port} {self.host_key_pub}\n"

    def kill(self) -> None:
        """The host "dies": its sshd and every session it serves (SIGKILL, by PID)."""
        for pid in [*descendants(self.proc.pid), self.proc.pid]:
            if Path(f"/proc/{pid}/exe").exists() and os.readlink(f"/proc/{pid}/exe").endswith("sshd"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc.wait(10)

    def stop_jobs(self) -> None:
        """Kill jobs left running in this host's run folders (a host killed under them)."""
        import json

        for job in self.workdir.glob("runs/*/.mltrain/job.json"):
            try:
                os.killpg(int(json.loads(job.read_text())["pgid"]), signal.SIGKILL)
            except (ProcessLookupError, ValueError, OSError):
                pass


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().split(" ", 2)[0] + " " + path.with_suffix(".pub").read_text().split()[1]


# The machine's TLS set-up, given to sessions as a host's admin would (uv on the host needs it here)
HOST_ENV = {k: os.environ[k] for k in ("SSL_CERT_FILE", "SSL_CERT_DIR") if k in os.environ}


def start_sshd(
    folder: Path, addr: str, client_key: Path, env: dict[str, str] | None = None, extra_config: str = ""
) -> Host:
    """An sshd on ``addr`` (a free port) accepting ``client_key`` as root; ``env`` is set in its sessions;
    ``extra_config``: more sshd_config lines."""
    if not Path(SSHD).exists():
        pytest.skip("openssh-server is not installed (scripts/system-deps.sh installs it)")
    Path("/run/sshd").mkdir(exist_ok=True)
    folder.mkdir(parents=True)
    host_pub = keygen(folder / "host_key")
    (folder / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    (folder / "authorized_keys").chmod(0o600)
    port = free_port(addr)
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress {addr}\nHostKey {folder / 'host_key'}\nPidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
        "Subsystem sftp internal-sftp\n"
        + ("SetEnv " + " ".join(f"{k}={v}" for k, v in {**HOST_ENV, **(env or {})}.items()) + "\n")
        + extra_config
    )
    proc = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(folder / "sshd.log")])
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection((addr, port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (folder / "sshd.log").read_text() if (folder / "sshd.log").exists() else ""
                pytest.skip(f"sshd could not start on {addr}:{port}: {log[-500:]}")
            time.sleep(0.05)
    workdir = folder / "mltrain-remote"
    return Host(addr, port, folder, proc, host_pub, client_key, workdir)


def stop_host(host: Host) -> None:
    host.stop_jobs()
    if host.proc.poll() is None:
        host.proc.terminate()  # our sshd, by PID (its sessions end with it)
        try:
            host.proc.wait(10)
        except subprocess.TimeoutExpired:
            host.proc.kill()
