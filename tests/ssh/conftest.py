"""Two real SSH hosts for the tests: sshd on 127.0.0.2 and 127.0.0.3 (started by the test session,
stopped by PID), a client key, and a known_hosts file that records both host keys."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from loopback_sshd import Host, keygen, start_sshd, stop_host  # noqa: E402


@dataclass
class Pool:
    hosts: list[Host]
    known_hosts: Path
    client_key: Path
    root: Path
    make_host: Callable[..., Host]

    def options(self, *hosts: Host, **changes: Any) -> dict[str, Any]:
        """Keyword options of an SSHCompute over ``hosts`` (default: all)."""
        chosen = hosts or tuple(self.hosts)
        return {"hosts": [h.entry() for h in chosen], "known_hosts": str(self.known_hosts), **changes}

    def overrides(self, *hosts: Host, **changes: Any) -> list[str]:
        """``python -m mltrain`` overrides selecting these hosts."""
        chosen = hosts or tuple(self.hosts)
        entries = ",".join("{" + ",".join(f"{k}:{v}" for k, v in h.entry().items()) + "}" for h in chosen)
        out = ["+compute=ssh", f"compute.hosts=[{entries}]", f"compute.known_hosts={self.known_hosts}"]
        return out + [f"compute.{k}={v}" for k, v in changes.items()]


@pytest.fixture(scope="session")
def ssh_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    root = tmp_path_factory.mktemp("ssh")
    client_key = root / "client_key"
    keygen(client_key)
    started: list[Host] = []

    def make_host(addr: str, name: str, env: dict[str, str] | None = None, extra_config: str = "") -> Host:
        host = start_sshd(root / name, addr, client_key, env, extra_config)
        started.append(host)
        return host

    try:
        hosts = [make_host("127.0.0.2", "host-a"), make_host("127.0.0.3", "host-b")]
        known = root / "known_hosts"
        known.write_text("".join(h.known_hosts_line() for h in hosts))
        yield Pool(hosts, known, client_key, root, make_host)
    finally:
        for host in started:
            stop_host(host)
