"""One SSH host of a pool: a connection (fabric, so ``~/.ssh/config`` aliases and ssh-agent work),
host keys checked against a known_hosts file, and the mltrain helper (:mod:`mltrain.remote.ssh_agent`)
run there from a folder unpacked from a zip of the node-side package (:func:`agent_archive`).

Host keys are never accepted silently: an unknown or changed key is refused with its SHA256
fingerprint and how to trust it, unless ``host_key_policy: accept-new`` records unknown ones.
Keepalives are on; every blocking read has a timeout, so a dead host is an error, never a hang.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import select
import shlex
import threading
import time
import zipfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.compute.ssh.config import SSHComputeConfig, SSHHostConfig
from mltrain.compute.ssh.lost import ConnectionLost
from mltrain.compute.ssh.mux import Mux, MuxChannel
from mltrain.errors import ComputeError, WorkspaceError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import paramiko

SEND_PIECE = 1 << 16  # bytes per sendall: paramiko's copies what is left after each packet (quadratic in a chunk)
AGENT_MAIN = b"import sys\nfrom mltrain.remote.ssh_agent import main\nmain(sys.argv[1:])\n"
# Unpacks the helper's zip (argv[1]) into its folder (argv[2]), which appears whole or not at all
# (a folder Python runs caches the bytecode of its modules: a zip's are compiled at every start)
UNPACK = (
    "import os, shutil, sys, zipfile\n"
    "archive, folder = sys.argv[1:]\n"
    "zipfile.ZipFile(archive).extractall(archive[:-4])\n"
    "os.remove(archive)\n"
    "try:\n"
    "    os.rename(archive[:-4], folder)\n"
    "except OSError:  # another connection unpacked it first\n"
    "    shutil.rmtree(archive[:-4])\n"
)


@cache
def agent_archive() -> bytes:
    """The helper as a host runs it: a zip of every module of the node-side package (``mltrain/remote/``)
    whose ``__main__`` runs :mod:`mltrain.remote.ssh_agent`; the same bytes for the same sources."""
    from mltrain.bundled import package_dir
    from mltrain.environments.shim import REMOTE_FILES

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        members = {"__main__.py": AGENT_MAIN, "mltrain/__init__.py": b""}
        members.update({f"mltrain/{rel}": (package_dir() / rel).read_bytes() for rel in REMOTE_FILES})
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


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


def _policies(known_hosts: Path, accept_new: bool) -> Any:
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


class Remote:
    """A host of the pool; its methods may be called from several threads."""

    def __init__(self, entry: SSHHostConfig, config: SSHComputeConfig) -> None:
        self.entry = entry
        self.config = config
        self.slots = int(entry.slots)
        self._conn: Any = None
        self._lock = threading.Lock()
        self._sftp: paramiko.SFTPClient | None = None
        self._sftp_lock = threading.Lock()
        self._put_lock = threading.Lock()
        self._mux: Mux | None = None
        self.known_blobs: set[str] = set()  # blobs this process saw in the host's cache
        self._mux_lock = threading.Lock()
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
        conn.client.set_missing_host_key_policy(_policies(known, cfg.host_key_policy == "accept-new"))
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
                self._drop()
                self._conn = self._connect()
            return self._conn.client.get_transport()

    def _drop(self) -> None:
        if self._mux is not None:
            self._mux.close()
            self._mux = None
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
            self._sftp = None
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()

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
    def serving(self) -> bool:
        """True while the warm helper answers on the open connection."""
        mux = self._mux
        return mux is not None and mux.alive and self._alive()

    def _serve(self) -> Mux | None:
        """The helper's ``serve`` on this connection (started on first use, again after a reconnection);
        None when it cannot start (commands then get a channel each)."""
        if self.probe is None:
            self.bootstrap()  # starts it
        with self._mux_lock:
            if self._mux is not None and self._mux.alive and self._alive():
                return self._mux
            if self._mux is not None:
                self._mux.close()
                self._mux = None
            try:
                chan = self.channel(self.agent_command("serve"), None)
            except ConnectionLost:
                return None
            self.round_trips -= 1  # counted per command it serves
            self._mux = Mux(chan, self.label)
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
        stdin: bytes = b"",
        timeout: float | None = 120.0,
        on_stderr: Callable[[str], None] | None = None,
    ) -> tuple[int, bytes, bytes]:
        """Run a helper command to its end: (exit status, stdout, stderr)."""
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
        return " ".join(shlex.quote(a) for a in (python, self.probe["agent"], self.probe["workdir"], *args))

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

    def bootstrap(self) -> dict[str, Any]:
        """Put the helper on the host (once), probe it (python, uv, docker, free disk) and keep it
        running as this connection's warm helper (``serve``): one round trip when it is there already."""
        source = agent_archive()
        python = shlex.quote(self.entry.python)
        name = f"agent-{hashlib.sha256(source).hexdigest()[:16]}"
        workdir = self.entry.workdir or self.config.workdir
        shell_dir = '"$HOME"/' + shlex.quote(workdir[2:]) if workdir.startswith("~/") else shlex.quote(workdir)
        unpack = shlex.quote(UNPACK)
        script = (
            f'W={shell_dir}; A="$W/{name}"; command -v {python} >/dev/null 2>&1 || exit 91; '
            f'if [ ! -f "$A/__main__.py" ]; then mkdir -p "$W" || exit 90; echo need; '
            f'head -c {len(source)} > "$A.$$.zip" && {python} -c {unpack} "$A.$$.zip" "$A" || exit 90; fi; '
            f'exec {python} "$A" "$W" serve probe'
        )
        chan = self.channel(script, 60)
        try:
            line = _read_line(chan)
            if line == b"need":
                chan.sendall(source)
                line = _read_line(chan)
        except (OSError, EOFError) as exc:
            chan.close()
            self.close()
            raise ConnectionLost(f"connection lost to {self.label}: {exc or type(exc).__name__}") from None
        if line is None:
            code, err = ended(chan)
            if code == 91:
                raise ComputeError(
                    f"{self.label} has no {self.entry.python} on its PATH: mltrain needs Python 3 on the host",
                    hint=f"install Python 3 on {self.entry.host} (e.g. apt-get install python3 python3-venv), "
                    "or name its interpreter in compute.hosts[].python",
                )
            raise ComputeError(
                f"cannot set up mltrain's helper on {self.label} in {workdir} (exit {code}): "
                + err.decode(errors="replace").strip()[-500:],
                hint="check compute.workdir (writable on the host?) and that python3 runs there",
            )
        probe = json.loads(line.decode())
        probe["agent"] = f"{probe['workdir']}/{name}"
        self.probe = probe
        with self._mux_lock:
            if self._mux is not None:
                self._mux.close()
            self._mux = Mux(chan, self.label)
        return probe

    # -- files ------------------------------------------------------------------------------------
    def sftp(self) -> paramiko.SFTPClient:
        with self._sftp_lock:
            if self._sftp is None:
                self._sftp = self.transport().open_sftp_client()
                self._sftp.get_channel().settimeout(max(30.0, self.config.keepalive_s * 3))
            return self._sftp

    def put_blob(self, local: Path, sha256: str) -> int:
        """Upload one file into the host's blob cache (atomically) as ``sha256``, hashed as it is sent:
        content that does not match its name is removed there and refused (WorkspaceError); bytes sent."""
        from mltrain.workspace.blobs import HashingReader, check_sha256

        assert self.probe is not None
        blobs = f"{self.probe['workdir']}/blobs"
        tmp = f"{blobs}/.up-{check_sha256(sha256)}-{time.monotonic_ns()}"
        sftp = self.sftp()
        # one upload at a time per host: paramiko's SFTP client garbles the stream (its server ends the
        # session) when several threads upload through it at once
        with self._put_lock:
            try:
                with open(local, "rb") as f:
                    reader = HashingReader(f)
                    sftp.putfo(reader, tmp, confirm=True)
                try:
                    reader.check(sha256, local)
                except WorkspaceError:
                    sftp.remove(tmp)
                    raise
                sftp.posix_rename(tmp, f"{blobs}/{sha256}")
            except (OSError, EOFError) as exc:
                self.close()
                raise ConnectionLost(f"connection lost to {self.label} while uploading: {exc}") from None
        return local.stat().st_size
