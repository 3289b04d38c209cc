"""The OpenSSH client (``ssh``) as a host's link to its warm helper: one ``ssh`` process per host runs
the helper's ``serve`` and carries its frames (:mod:`~mltrain.compute.ssh.mux`) on the process's
stdin and stdout. Its handshake and the helper's start run in a process of their own (another core),
while the driver imports and composes; files to the host travel on it too (the helper's ``receive``).
paramiko (:mod:`~mltrain.compute.ssh.conn`) is the link whenever OpenSSH cannot connect, and it reports
why a host cannot be reached.

Host keys are as strict as paramiko's: only the ``known_hosts`` file the config names is trusted
(``StrictHostKeyChecking=yes``, no global file, never updated), so an unknown or changed key makes
``ssh`` fail and the paramiko connection refuses it with its fingerprint and hint (or, with
``host_key_policy: accept-new``, records it). ``BatchMode``: never a prompt. ``MLTRAIN_SSH_CLIENT=paramiko``
turns this link off.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # this module is imported before anything else (mltrain.compute.ssh.prespawn): stdlib only
    from mltrain.compute.ssh.config import SSHComputeConfig, SSHHostConfig

FAILED = 255  # ssh's own exit status: it could not connect, log in or trust the host
# AES-GCM first (AES-NI, no separate MAC: half the CPU of ssh's default chacha20 on the files the link
# carries, as paramiko's link prefers it); the others stay for servers without it
CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr"


def client() -> str | None:
    """The ``ssh`` program, or None when there is none (or ``MLTRAIN_SSH_CLIENT=paramiko``)."""
    import shutil

    return None if off() else shutil.which("ssh")


def off() -> bool:
    """``MLTRAIN_SSH_CLIENT=paramiko``: the OpenSSH client is not used."""
    return os.environ.get("MLTRAIN_SSH_CLIENT", "").lower() == "paramiko"


def user_config() -> str:
    """The ``~/.ssh/config`` paramiko reads (``$HOME``'s, where ssh alone would read the login's home),
    so a host alias means the same on both links; none when it does not exist."""
    from pathlib import Path

    path = Path("~/.ssh/config").expanduser()
    return str(path) if path.is_file() else os.devnull


def argv(program: str, entry: SSHHostConfig, config: SSHComputeConfig, command: str) -> list[str]:
    """``ssh`` running ``command`` on ``entry``'s host with the config's known_hosts, key and timeouts."""
    from pathlib import Path

    known = Path(config.known_hosts or "~/.ssh/known_hosts").expanduser()
    options = {
        "BatchMode": "yes",
        "StrictHostKeyChecking": "yes",
        "UserKnownHostsFile": str(known),
        "GlobalKnownHostsFile": "/dev/null",
        "UpdateHostKeys": "no",
        "CheckHostIP": "no",
        "ConnectTimeout": str(max(1, round(config.connect_timeout_s))),
        "ServerAliveInterval": str(max(1, round(config.keepalive_s))),
        "ServerAliveCountMax": "3",
        "ControlMaster": "no",
        "ControlPath": "none",
        "ForwardAgent": "no",
        "ForwardX11": "no",
        "ClearAllForwardings": "yes",
        "PermitLocalCommand": "no",
        "Ciphers": CIPHERS,
        "LogLevel": "ERROR",
    }
    args = [program, "-T", "-F", user_config()]
    for key, value in options.items():
        args += ["-o", f"{key}={value}"]
    if entry.key_file:  # only that key, so a wrong key is an error, not a fallback
        key = str(Path(entry.key_file).expanduser())
        args += ["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i", key]
    if entry.port:
        args += ["-p", str(entry.port)]
    if entry.user:
        args += ["-l", entry.user]
    return [*args, "--", entry.host, command]


OPTIONS = frozenset(
    (
        "BatchMode",
        "StrictHostKeyChecking",
        "UserKnownHostsFile",
        "GlobalKnownHostsFile",
        "UpdateHostKeys",
        "CheckHostIP",
        "ConnectTimeout",
        "ServerAliveInterval",
        "ServerAliveCountMax",
        "ControlMaster",
        "ControlPath",
        "ForwardAgent",
        "ForwardX11",
        "ClearAllForwardings",
        "PermitLocalCommand",
        "Ciphers",
        "LogLevel",
        "IdentitiesOnly",
        "IdentityAgent",
    )
)  # the -o options :func:`argv` writes: no other (ProxyCommand, LocalCommand, ...) runs from a stored line


def shaped(args: object, program: str | None) -> bool:
    """Whether ``args`` (read from a file: untrusted) has the shape :func:`argv` gives: ``program``, then
    only its options (no option that runs a local command or reads another config), ``--``, a host and
    the remote command."""
    if not isinstance(args, list) or program is None or not all(isinstance(a, str) for a in args):
        return False
    if args[:3] != [program, "-T", "-F"] or len(args) < 7 or args[3] not in (user_config(), os.devnull):
        return False
    i = 4
    while args[i] != "--":
        flag, value = args[i], args[i + 1] if i + 1 < len(args) else ""
        if flag == "-o" and value.partition("=")[0] not in OPTIONS:
            return False
        if flag not in ("-o", "-i", "-p", "-l") or (flag == "-p" and not value.isdigit()):
            return False
        i += 2
        if i >= len(args):
            return False
    return len(args) == i + 3 and not args[i + 1].startswith("-")


class Link:
    """A running ``ssh`` read and written like a paramiko channel (``recv``, ``sendall``,
    ``settimeout``, ``close``): its stdin and stdout are the remote command's."""

    def __init__(self, args: list[str]) -> None:
        # a session of its own: Ctrl-C in the terminal reaches the driver, which still needs the link to
        # stop its job; stderr kept to say why ssh failed
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in, self._out = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        try:  # files sent to the host move in larger steps than Linux's default 64 KiB pipe allows
            fcntl.fcntl(self._in, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        except OSError:
            pass
        self.timeout: float | None = None
        self.closed = False

    @property
    def alive(self) -> bool:
        return not self.closed and self.proc.poll() is None

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes of the command's stdout; b"" at its end; TimeoutError after ``timeout``."""
        if self.timeout is not None and not select.select([self._out], [], [], self.timeout)[0]:
            raise TimeoutError(f"no answer within {self.timeout} s")
        try:
            return os.read(self._out, size)
        except (OSError, ValueError):
            return b""

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._in, view) :]

    def failure(self, wait_s: float = 10.0) -> tuple[int, str]:
        """After the output ended: ssh's exit status (:data:`FAILED`: its own failure) and its stderr."""
        try:
            code = self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            self.close()
            code = FAILED
        assert self.proc.stderr is not None
        err = self.proc.stderr.read() if select.select([self.proc.stderr], [], [], 0)[0] else b""
        return code, err.decode(errors="replace")

    def close(self) -> None:
        """End the link (the remote command reads end of input, as when a channel closes)."""
        if self.closed:
            return
        self.closed = True
        try:  # stdout stays open: a reader may wait on it (it reads the end once ssh is gone)
            self.proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
