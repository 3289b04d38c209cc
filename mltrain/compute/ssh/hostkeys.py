"""Host keys of SSH hosts checked by paramiko: never accepted silently. An unknown or changed key is
refused with its SHA256 fingerprint and the command that trusts it (or removes the old one), unless
``host_key_policy: accept-new`` records unknown ones in the known_hosts file.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.errors import ComputeError

if TYPE_CHECKING:
    import paramiko


def fingerprint(key: paramiko.PKey) -> str:
    """The key's fingerprint as OpenSSH prints it (``SHA256:...``)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def keyscan_line(host: str, port: int, known_hosts: Path) -> str:
    """The command that records ``host``'s key in ``known_hosts`` (making its folder when missing)."""
    mkdir = "" if known_hosts.parent.is_dir() else f"mkdir -p -m 700 {shlex.quote(str(known_hosts.parent))} && "
    return f"{mkdir}ssh-keyscan -p {port} {host} >> {shlex.quote(str(known_hosts))}"


class HostKeyProblem(ComputeError):
    """The host's key is not trusted: ``kind`` is "unknown" or "changed"; ``fix`` the command that
    trusts it (an unknown key) or removes the old one (a changed key)."""

    def __init__(self, message: str, kind: str, fix: str, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.kind, self.fix = kind, fix


def policies(known_hosts: Path, accept_new: bool) -> Any:
    import paramiko

    class Refuse(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            if accept_new:
                client.get_host_keys().add(hostname, key.get_name(), key)
                known_hosts.parent.mkdir(parents=True, exist_ok=True)
                with open(known_hosts, "a") as f:
                    f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
                return
            host, _, port = hostname.strip("[").partition("]:")
            fix = keyscan_line(host, int(port or 22), known_hosts)
            raise HostKeyProblem(
                f"the host key of {hostname} is unknown ({key.get_name()} {fingerprint(key)}); "
                f"mltrain does not trust unknown host keys",
                "unknown",
                fix,
                hint=f"if that is the fingerprint of the host, trust it with `{fix}` "
                f"(or connect once with ssh), or set compute.host_key_policy=accept-new",
            )

    return Refuse()
