"""One SSH host of a pool: the mltrain helper (:mod:`mltrain.remote.ssh_agent`, put there by
:mod:`~mltrain.compute.ssh.helper`) kept serving over one link, the OpenSSH client when it can
connect (:mod:`~mltrain.compute.ssh.openssh`), else a paramiko connection (fabric, so ``~/.ssh/config``
aliases and ssh-agent work), which also says why a host cannot be reached.

Host keys are never accepted silently, on either link (:mod:`~mltrain.compute.ssh.hostkeys`).
Keepalives are on; every blocking read has a timeout, so a dead host is an error, never a hang.
"""

from __future__ import annotations

import json
import select
import shlex
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.compute.ssh import interpreters, openssh, prespawn
from mltrain.compute.ssh.config import SSHComputeConfig, SSHHostConfig
from mltrain.compute.ssh.helper import FLAGS, archive_message, start_script
from mltrain.compute.ssh.hostkeys import HostKeyProblem, fingerprint, known_hosts_name, policies
from mltrain.compute.ssh.lost import ConnectionLost
from mltrain.compute.ssh.mux import Mux, MuxChannel
from mltrain.errors import ComputeError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import paramiko

SEND_PIECE = 1 << 16  # bytes per sendall: paramiko's copies what is left after each packet (quadratic in a chunk)


def ended(chan: Any) -> tuple[int, bytes]:
    """A command whose stream ended early: its exit status and stderr (the channel is closed)."""
    err = b""
    while chan.recv_stderr_ready():
        err += chan.recv_stderr(65536)
    code = chan.recv_exit_status()
    chan.close()
    return code, err


def _read_line(chan: Any, limit: int = 1 << 20) -> bytes | None:
    """One line of ``chan``'s stdout (without its newline); None when it ends first."""
    buf = bytearray()
    while len(buf) < limit:
        byte = chan.recv(1)
        if not byte:
            return None
        if byte == b"\n":
            return bytes(buf)
        buf += byte
    raise OSError(f"a line longer than {limit} bytes")


def _transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
    """paramiko's transport, preferring AES-GCM (an AEAD cipher: one pass of AES-NI per packet, where
    AES-CTR adds an HMAC per packet; bulk data, a job's inputs, moves about twice as fast): the order of
    preference only, so a server without it still gets the others."""
    import paramiko

    t = paramiko.Transport(sock, **kwargs)
    options = t.get_security_options()
    gcm = tuple(c for c in options.ciphers if c.endswith("-gcm@openssh.com"))
    options.ciphers = gcm + tuple(c for c in options.ciphers if c not in gcm)
    return t


class Remote:
    """A host of the pool; its methods may be called from several threads."""

    def __init__(self, entry: SSHHostConfig, config: SSHComputeConfig) -> None:
        self.entry = entry
        self.config = config
        self.slots = int(entry.slots)
        self._conn: Any = None
        self._lock = threading.Lock()
        self._mux: Mux | None = None
        self.known_blobs: set[str] = set()  # blobs this process saw in the host's cache
        self._mux_lock = threading.Lock()
        self._start_lock = threading.RLock()  # one helper start at a time
        self._link: openssh.Link | None = None  # the OpenSSH link the warm helper runs on, if it does
        self._spawned: openssh.Link | None = None  # a link started by spawn(), not read yet
        self.probe: dict[str, Any] | None = None
        self.round_trips = 0
        self.warming: threading.Thread | None = None  # an early connection under way (compute.ssh.early)

    @property
    def label(self) -> str:
        e = self.entry
        return f"{e.user + '@' if e.user else ''}{e.host}{':' + str(e.port) if e.port else ''}"

    @property
    def where(self) -> str:
        """Where an environment built on this host lives, as its record names it."""
        return f"ssh:{self.label}"

    def ident(self) -> dict[str, Any]:
        """What a job reference stores to reach this host again."""
        e = self.entry
        return {"host": e.host, "port": e.port, "user": e.user, "key_file": e.key_file}

    # -- connection -------------------------------------------------------------------------------
    def _connect(self) -> Any:
        from fabric import Config, Connection
        from paramiko.ssh_exception import AuthenticationException, BadHostKeyException, SSHException

        e, cfg = self.entry, self.config
        kwargs: dict[str, Any] = {"banner_timeout": cfg.connect_timeout_s, "auth_timeout": cfg.connect_timeout_s}
        kwargs["transport_factory"] = _transport
        if e.key_file:  # only that key (as IdentitiesOnly), so a wrong key is an error, not a fallback
            kwargs.update(key_filename=[str(Path(e.key_file).expanduser())], look_for_keys=False, allow_agent=False)
        conn = Connection(
            e.host,
            user=e.user,
            port=e.port,
            config=Config(),
            connect_timeout=max(1, round(cfg.connect_timeout_s)),
            connect_kwargs=kwargs,
        )
        known = Path(cfg.known_hosts or "~/.ssh/known_hosts").expanduser()
        if known.is_file():
            conn.client.load_host_keys(str(known))
        conn.client.set_missing_host_key_policy(policies(known, cfg.host_key_policy == "accept-new"))
        where = f"{conn.user}@{conn.host}:{conn.port}"
        try:
            conn.open()
        except BadHostKeyException as exc:
            fix = f"ssh-keygen -R '{known_hosts_name(conn.host, conn.port)}' -f {known}"
            raise HostKeyProblem(
                f"the host key of {where} CHANGED: it is now {exc.key.get_name()} {fingerprint(exc.key)}, but "
                f"{known} records {fingerprint(exc.expected_key)}; this may be an attack",
                "changed",
                fix,
                hint=f"if the host was reinstalled, remove the old key with `{fix}` and trust the new one",
            ) from None
        except AuthenticationException as exc:
            raise ComputeError(
                f"cannot log in to {where}: {exc}",
                hint="check compute.hosts[].user and key_file (or the keys in your ssh-agent and ~/.ssh/config)",
            ) from None
        except ComputeError:
            raise
        except (SSHException, OSError, EOFError) as exc:
            raise ConnectionLost(
                f"cannot connect to {where}: {exc or type(exc).__name__}",
                hint="check that the host is up, and compute.hosts[].host and port (sshd listens there?)",
            ) from None
        transport = conn.client.get_transport()
        transport.set_keepalive(max(1, round(cfg.keepalive_s)))
        return conn

    def transport(self) -> paramiko.Transport:
        with self._lock:
            if self._conn is None or not self._conn.client.get_transport() or not self._conn.is_connected:
                self._drop_paramiko()
                self._conn = self._connect()
            return self._conn.client.get_transport()

    def _drop(self) -> None:
        for link in (self._spawned, self._link):
            if link is not None:
                link.close()
        self._spawned = self._link = None
        if self._mux is not None:
            self._mux.close()
            self._mux = None
        self._drop_paramiko()

    def _drop_paramiko(self) -> None:
        if self._mux is not None and self._link is None:  # the helper ran on this connection
            self._mux.close()
            self._mux = None
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def reconnect(self) -> bool:
        """A new connection with the helper serving on it; False when the host cannot be reached."""
        self.close()
        try:
            self.bootstrap()
            return True
        except ComputeError:
            return False

    # -- commands ---------------------------------------------------------------------------------
    def channel(self, command: str, timeout: float | None) -> paramiko.Channel:
        """A session channel running ``command`` (reads time out after ``timeout`` seconds)."""
        try:
            chan = self.transport().open_session(timeout=self.config.connect_timeout_s)
            chan.settimeout(timeout)
            chan.exec_command(command)
        except ComputeError:
            raise
        except Exception as exc:  # noqa: BLE001 - paramiko raises several kinds when the link is gone
            self.close()
            raise ConnectionLost(f"connection lost to {self.label}: {exc or type(exc).__name__}") from None
        self.round_trips += 1
        return chan

    @property
    def via(self) -> str | None:
        """What the warm helper's link is: "openssh" (an ``ssh`` process), "paramiko", or None (none yet)."""
        if self._mux is None:
            return None
        return "openssh" if self._link is not None else "paramiko"

    @property
    def connected_by_paramiko(self) -> bool:
        """Whether a paramiko connection is open (for files, or as the helper's link)."""
        return self._conn is not None

    @property
    def serving(self) -> bool:
        """True while the warm helper answers on the open connection."""
        mux, link = self._mux, self._link
        return mux is not None and mux.alive and (link.alive if link is not None else self._alive())

    def _serve(self) -> Mux | None:
        """The helper's ``serve`` (started on first use, again on a new connection when it stopped);
        None when it cannot start (commands then get a channel each)."""
        with self._start_lock:
            if self.probe is not None and self.serving:
                return self._mux
            first = self.probe is None
            try:
                self.bootstrap()
            except ConnectionLost:
                return None
            if not first:
                self.round_trips -= 1  # a restart: counted per command it serves
            return self._mux

    def agent_channel(self, *args: str, timeout: float | None) -> MuxChannel | paramiko.Channel:
        """A helper command (``args``) that reads and writes like a channel of its own: served by the
        warm helper on the open connection when it runs, else a channel running the helper."""
        mux = self._serve()
        if mux is not None:
            try:
                chan = mux.open(args, timeout)
                self.round_trips += 1
                return chan
            except OSError:
                pass  # the connection broke just now: the channel below reconnects or says so
        return self.channel(self.agent_command(*args), timeout)

    def agent_exec(
        self,
        *args: str,
        stdin: bytes | Iterable[bytes] = b"",
        timeout: float | None = 120.0,
        on_stderr: Callable[[str], None] | None = None,
    ) -> tuple[int, bytes, bytes]:
        """Run a helper command to its end: (exit status, stdout, stderr). ``stdin``: bytes, or chunks
        sent as they come (of at most :data:`SEND_PIECE` bytes each: a frame of the warm helper's link)."""
        chan = self.agent_channel(*args, timeout=timeout)
        if isinstance(chan, MuxChannel):
            try:
                return chan.communicate(stdin, timeout, on_stderr)
            except ConnectionLost:
                self.close()
                raise
        return self._communicate(chan, stdin, timeout, on_stderr)

    def execute(
        self,
        command: str,
        stdin: bytes | Iterable[bytes] = b"",
        timeout: float | None = 120.0,
        on_stderr: Callable[[str], None] | None = None,
    ) -> tuple[int, bytes, bytes]:
        """Run ``command``; (exit status, stdout, stderr). ``stdin``: bytes, or chunks streamed as they come
        (sending stops when the command exits early: its answer says why). ``on_stderr`` gets stderr line
        by line."""
        return self._communicate(self.channel(command, timeout), stdin, timeout, on_stderr)

    def _communicate(
        self,
        chan: paramiko.Channel,
        stdin: bytes | Iterable[bytes],
        timeout: float | None,
        on_stderr: Callable[[str], None] | None,
    ) -> tuple[int, bytes, bytes]:
        out, err = bytearray(), bytearray()
        pending = b""
        try:
            for chunk in [stdin] if isinstance(stdin, bytes) else stdin:
                if chan.exit_status_ready():
                    break
                try:
                    for at in range(0, len(chunk), SEND_PIECE):
                        chan.sendall(chunk[at : at + SEND_PIECE])
                except OSError:
                    if not chan.exit_status_ready():
                        raise
                    break
            chan.shutdown_write()
            last = time.monotonic()
            while True:
                got = False
                if chan.recv_ready():
                    out += chan.recv(65536)
                    got = True
                if chan.recv_stderr_ready():
                    data = chan.recv_stderr(65536)
                    err += data
                    got = True
                    if on_stderr:
                        pending += data
                        *lines, pending = pending.split(b"\n")
                        for line in lines:
                            on_stderr(line.decode(errors="replace"))
                if got:
                    last = time.monotonic()
                    continue
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                if (chan.closed and not chan.exit_status_ready()) or not self._alive():
                    raise ConnectionLost(f"connection lost to {self.label}")
                if timeout is not None and time.monotonic() - last > timeout:
                    self.close()
                    raise ConnectionLost(f"connection lost to {self.label}: no answer within {timeout:.0f} s")
                if chan.eof_received:  # only the exit status is still to come: it sets no select event
                    chan.status_event.wait(0.2)
                else:
                    select.select([chan], [], [], 1.0)
            if on_stderr and pending:
                on_stderr(pending.decode(errors="replace"))
            return chan.recv_exit_status(), bytes(out), bytes(err)
        except OSError as exc:
            self.close()
            raise ConnectionLost(f"connection lost to {self.label}: {exc}") from None
        finally:
            chan.close()

    def _alive(self) -> bool:
        conn = self._conn
        transport = conn.client.get_transport() if conn is not None else None
        return bool(transport and transport.is_active())

    def agent_command(self, *args: str) -> str:
        if self.probe is None:
            self.bootstrap()
        assert self.probe is not None
        python = self.probe.get("executable") or self.entry.python  # the real path: no shims on the way
        return " ".join(shlex.quote(a) for a in (python, FLAGS, self.probe["agent"], self.probe["workdir"], *args))

    def agent(
        self,
        *args: str,
        request: Any = None,
        timeout: float | None = 120.0,
        on_stderr: Callable[[str], None] | None = None,
    ) -> Any:
        """Run a helper command; its JSON answer. ComputeError naming the host when it fails."""
        stdin = json.dumps(request).encode() if request is not None else b""
        code, out, err = self.agent_exec(*args, stdin=stdin, timeout=timeout, on_stderr=on_stderr)
        if code != 0:
            detail = err.decode(errors="replace").strip().splitlines()[-12:]
            raise ComputeError(f"on {self.label}, `{args[0]}` failed (exit {code}): " + "\n    ".join(detail))
        return json.loads(out.decode().strip().splitlines()[-1])

    def _script(self) -> tuple[str, str]:
        """The command that starts the helper (:func:`~mltrain.compute.ssh.helper.start_script`) with the
        interpreter's real path when a run found it before (no shim on the way); the helper's folder name."""
        known = interpreters.remembered(self.label, self.entry.python)
        return start_script(self.entry.workdir or self.config.workdir, self.entry.python, known)

    def link_argv(self) -> list[str] | None:
        """The ``ssh`` command line of this host's link (its helper started), or None without OpenSSH."""
        program = openssh.client()
        return None if program is None else openssh.argv(program, self.entry, self.config, self._script()[0])

    def spawn(self) -> None:
        """Start connecting with OpenSSH now (its handshake and the helper's start run in a process of
        their own while the caller goes on), or take the client the entry point started with the same
        command line (:mod:`~mltrain.compute.ssh.prespawn`); :meth:`bootstrap` reads what it brings."""
        args = self.link_argv()
        with self._start_lock:
            if args is not None and self._spawned is None and self.probe is None:
                self._spawned = prespawn.take(args) or openssh.Link(args)

    def bootstrap(self) -> dict[str, Any]:
        """Put the helper on the host (once), probe it (python, uv, docker, free disk) and keep it
        running as this connection's warm helper (``serve``): one round trip when it is there already.
        Through OpenSSH when it can connect, else (and to say why not) through paramiko."""
        with self._start_lock:
            script, name = self._script()
            link, self._spawned = self._spawned, None
            program = openssh.client()
            if link is None and program is not None:
                link = openssh.Link(openssh.argv(program, self.entry, self.config, script))
            line = self._handshake(link, 60) if link is not None else None
            if line is None:
                link = None
                chan: Any = self.channel(script, 60)
                line = self._handshake(chan, 60)
            else:
                self.round_trips += 1
                chan = link
            probe = json.loads(line.decode())
            probe["agent"] = f"{probe['workdir']}/{name}"
            if probe.get("executable"):
                interpreters.remember(self.label, self.entry.python, probe["executable"])
            self.probe = probe
            with self._mux_lock:
                if self._mux is not None:
                    self._mux.close()
                if self._link is not None and self._link is not link:
                    self._link.close()
                self._mux, self._link = Mux(chan, self.label), link
            return probe

    def _handshake(self, chan: Any, timeout: float) -> bytes | None:
        """The probe line of the helper started by :meth:`_script` on ``chan`` (sending the helper when
        the host asks for it); None when ``chan`` is an OpenSSH link that could not connect."""
        is_link = isinstance(chan, openssh.Link)
        chan.settimeout(timeout)
        try:
            line = _read_line(chan)
            if line == b"need":
                chan.sendall(archive_message())
                line = _read_line(chan)
        except (OSError, EOFError) as exc:
            chan.close()
            if is_link:
                return None
            self.close()
            raise ConnectionLost(f"connection lost to {self.label}: {exc or type(exc).__name__}") from None
        if line is not None:
            return line
        code, err = chan.failure() if is_link else ended(chan)
        if is_link:
            chan.close()
            if code == openssh.FAILED:
                return None  # paramiko connects and says why not
        if code == 91:
            raise ComputeError(
                f"{self.label} has no {self.entry.python} on its PATH: mltrain needs Python 3 on the host",
                hint=f"install Python 3 on {self.entry.host} (e.g. apt-get install python3 python3-venv), "
                "or name its interpreter in compute.hosts[].python",
            )
        detail = err.decode(errors="replace") if isinstance(err, bytes) else err
        raise ComputeError(
            f"cannot set up mltrain's helper on {self.label} in {self.entry.workdir or self.config.workdir} "
            f"(exit {code}): " + detail.strip()[-500:],
            hint="check compute.workdir (writable on the host?) and that python3 runs there",
        )
