"""The helper's warm mode on an SSH host: ``serve`` (a command of :mod:`mltrain.remote.ssh_agent`),
kept running over one SSH channel for as long as the driver holds the connection.

Many commands travel over that one channel as frames: ``kind`` (1 byte), ``id`` (uint32) and
``length`` (uint32), then the data. From the driver: ``c`` (run a command: a JSON list of its
arguments), ``i`` (its stdin), ``e`` (end of its stdin), ``k`` (close it: its output is no longer
read). To the driver: ``o``/``e`` (the command's stdout/stderr) and ``x`` (its exit status). Each
command runs in a child forked from this already-started helper, exactly as
``python3 -S AGENT WORKDIR COMMAND ...`` would run it, so no command pays for a new interpreter.

``prewarm`` (a JSON request: python, env, modules, size) starts warm fork servers
(:mod:`mltrain.remote.forkserver`, the code local compute uses) for an environment's Python; a later
``start`` whose job runs in that Python (not in a container) is forked from one of them instead of
being started by a supervisor: still a process group of its own in its run folder, with its output,
``job.json`` and ``exit_code`` where the supervisor puts them, so ``follow``, ``stop``, ``status`` and
recovery work unchanged. When the channel closes, the helper waits for the jobs it forked (their exit
codes are still recorded; a driver that reconnects follows them) and then ends.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import queue
import select
import signal
import struct
import sys
import threading
from collections.abc import Callable
from typing import Any

HEAD = struct.Struct(">cII")
MAX_STDIN_LINE = 64 << 20
READ_SIZE = 1 << 20  # bytes read from the driver at once
SPLICE = getattr(os, "splice", None)  # Linux, Python >= 3.10: pipe to pipe in the kernel
PIPE_SIZE = 1 << 20  # a command's stdin pipe: Linux's default 64 KiB makes a stream of files stop and go


def _grow_pipe(fd: int) -> None:
    """Let pipe ``fd`` hold :data:`PIPE_SIZE` bytes (Linux; elsewhere, or over the system's limit, it stays)."""
    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
    except OSError:
        pass


def _write_frame(fd: int, kind: bytes, ident: int, data: bytes) -> bool:
    view = memoryview(HEAD.pack(kind, ident, len(data)) + data)
    try:
        while view:
            view = view[os.write(fd, view) :]
        return True
    except OSError:
        return False


def _run_child(
    commands: dict[str, Callable[..., None]], work: str, args: list[str], rfd: int, wout: int, werr: int
) -> None:
    """In a forked child: fds 0/1/2 become the command's pipes, then the command runs as in its own process."""
    code = 0
    try:
        for fd, target in ((rfd, 0), (wout, 1), (werr, 2)):
            os.dup2(fd, target)
            os.close(fd)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8")
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", write_through=True)
        if not args or args[0] not in commands:
            sys.stderr.write(f"unknown command {args[:1]}\n")
            code = 2
        else:
            commands[args[0]](work, *args[1:])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported as python would, as the command's own failure
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001 - the reader is gone
            pass
        os._exit(code)


class Command:
    """A command the driver asked for: its child (once forked) and the pipes to and from it."""

    def __init__(self, ident: int, args: list[str]) -> None:
        self.ident, self.args = ident, args
        self.pid: int | None = None
        self.stdin: int | None = None  # write end of the child's stdin
        self.outs: dict[int, bytes] = {}  # read end -> frame kind
        self.pending = b""  # stdin that came before the child was forked
        self.deciding = False  # a start request is being tried on a warm server
        self.eof = False
        self.code: int | None = None


class Server:
    def __init__(self, work: str, commands: dict[str, Callable[..., None]]) -> None:
        self.work, self.commands = work, commands
        self.cmds: dict[int, Command] = {}
        self.by_fd: dict[int, Command] = {}
        self.pools: dict[str, Any] = {}  # python -> ForkServerPool
        self.jobs: list[threading.Thread] = []
        self.started: queue.SimpleQueue[tuple[Command, bytes | None]] = queue.SimpleQueue()
        self.wake_r, self.wake_w = os.pipe()
        self.inbuf = bytearray()  # a frame's header and (when not passed on by the kernel) its body
        self.passing: tuple[Command, int] | None = None  # a command whose input frame is being passed on: bytes left
        self.open = True

    # -- frames from the driver -------------------------------------------------------------------
    def on_frame(self, kind: bytes, ident: int, data: bytes) -> None:
        if kind == b"c":
            cmd = Command(ident, [str(a) for a in json.loads(data)])
            self.cmds[ident] = cmd
            if cmd.args[:1] not in (["start"], ["prewarm"]):
                self.fork(cmd)
            return
        cmd = self.cmds.get(ident)
        if cmd is None:
            return
        if kind == b"i":
            if cmd.pid is None:
                cmd.pending += data
                if cmd.args[0] == "start" and b"\n" in cmd.pending and not cmd.deciding:
                    cmd.deciding = True
                    line = cmd.pending.partition(b"\n")[0]
                    threading.Thread(target=self.warm_start, args=(cmd, line), daemon=True).start()
                elif len(cmd.pending) > MAX_STDIN_LINE:
                    self.fork(cmd)
            else:
                self.feed(cmd, data)
        elif kind == b"e":
            cmd.eof = True
            if cmd.pid is not None:
                self.close_stdin(cmd)
            elif cmd.args[0] == "prewarm":
                self.prewarm(cmd)
            elif not cmd.deciding:
                self.fork(cmd)
        elif kind == b"k":
            cmd.eof = True
            if cmd.pid is not None:
                self.close_stdin(cmd)
                for fd in list(cmd.outs):
                    self.drop_fd(fd)
                self.finish(cmd, send=False)

    # -- children ---------------------------------------------------------------------------------
    def fork(self, cmd: Command, args: list[str] | None = None, prefix: bytes = b"") -> None:
        """Run ``cmd`` (or ``args`` for it) in a forked child; ``prefix`` goes to its stdout first."""
        rfd, wfd = os.pipe()
        _grow_pipe(wfd)  # a command's input (files sent to ``receive``) moves in larger steps
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            for fd in (wfd, out_r, err_r, self.wake_r, self.wake_w, 0, 1):
                try:
                    os.close(fd)
                except OSError:
                    pass
            servers = [s.sock.fileno() for pool in self.pools.values() for s in pool.servers]
            for fd in [*self.by_fd, *(c.stdin for c in self.cmds.values() if c.stdin is not None), *servers]:
                try:
                    os.close(fd)
                except OSError:
                    pass
            if prefix:
                os.write(out_w, prefix)
            _run_child(self.commands, self.work, args or cmd.args, rfd, out_w, err_w)
        for fd in (rfd, out_w, err_w):
            os.close(fd)
        cmd.pid, cmd.stdin = pid, wfd
        cmd.outs = {out_r: b"o", err_r: b"e"}
        self.by_fd.update({out_r: cmd, err_r: cmd})
        if cmd.pending:
            self.feed(cmd, cmd.pending)
            cmd.pending = b""
        if cmd.eof:
            self.close_stdin(cmd)

    def feed(self, cmd: Command, data: bytes) -> None:
        if cmd.stdin is None:
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(cmd.stdin, view) :]
        except OSError:
            self.close_stdin(cmd)

    def close_stdin(self, cmd: Command) -> None:
        if cmd.stdin is not None:
            os.close(cmd.stdin)
            cmd.stdin = None

    def drop_fd(self, fd: int) -> None:
        cmd = self.by_fd.pop(fd, None)
        if cmd is not None:
            cmd.outs.pop(fd, None)
        os.close(fd)

    def finish(self, cmd: Command, send: bool = True) -> None:
        """Reap ``cmd``'s child once its output is drained, and report its exit status."""
        if cmd.outs or cmd.pid is None:
            return
        self.close_stdin(cmd)
        _, status = os.waitpid(cmd.pid, 0)
        code = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8
        self.cmds.pop(cmd.ident, None)
        if send and self.open:
            self.open = _write_frame(1, b"x", cmd.ident, str(code).encode())

    # -- warm jobs --------------------------------------------------------------------------------
    def prewarm(self, cmd: Command) -> None:
        """Start fork servers of a Python (answered at once; they get ready in the background)."""
        from mltrain.remote.forkserver import ForkServerPool

        req = json.loads(cmd.pending.decode() or "{}")
        python = str(req["python"])
        ok = python in self.pools
        if not ok and sys.version_info >= (3, 9):
            prefix = ["-c", _SERVER_BOOT.format(agent=os.path.abspath(sys.argv[0]))]
            env = job_env(req)
            self.pools[python] = ForkServerPool(python, env, list(req["modules"]), int(req["size"]), prefix)
            ok = True
        if self.open:
            self.open = _write_frame(1, b"o", cmd.ident, (json.dumps({"warm": ok}) + "\n").encode())
            self.open = _write_frame(1, b"x", cmd.ident, b"0")
        self.cmds.pop(cmd.ident, None)

    def warm_start(self, cmd: Command, line: bytes) -> None:
        """(A thread) Start the job of the start request ``line``; the command then goes on as
        ``follow``. When that fails, the command runs as it would on its own (and says why)."""
        started = None
        try:
            if len(cmd.args) < 3:  # no heartbeat: the answer alone, as the command gives it
                raise ValueError(cmd.args)
            started = self._start_job(cmd.args[1], json.loads(line))
        except (OSError, ValueError, KeyError, TypeError, SystemExit):
            started = None
        self.started.put((cmd, started))
        os.write(self.wake_w, b"!")

    def _start_job(self, run_id: str, req: dict[str, Any]) -> bytes | None:
        """Start the job of ``req`` as the supervisor would (forked from a warm server of its Python
        when one is idle, else ``Popen``), with a thread recording its exit code; its 'j' frame data."""
        import subprocess

        from mltrain.remote.procs import start_token
        from mltrain.remote.ssh_host import (
            EXIT_FILE,
            JOB_FILE,
            STREAMS,
            blob_files,
            inside,
            materialise_run,
            run_dir_of,
            write_atomic,
        )

        argv = [str(a) for a in req["argv"]]
        run_dir = run_dir_of(self.work, run_id)
        if req.get("materialise") and materialise_run(self.work, run_id, blob_files({"files": req["materialise"]})):
            return None  # the command says what is missing
        if not os.path.isdir(run_dir):
            return None  # the command says so
        for rel, text in req.get("files", {}).items():
            dest = inside(run_dir, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            write_atomic(dest, text.encode())
        write_atomic(os.path.join(run_dir, ".mltrain", "request.json"), json.dumps(req).encode())
        pool = self.pools.get(argv[0]) if len(argv) > 1 and not req.get("container") else None
        server = pool.acquire() if pool is not None and not argv[1].startswith("-") else None
        env = job_env(req)
        with (
            open(os.path.join(run_dir, STREAMS["o"]), "ab") as out,
            open(os.path.join(run_dir, STREAMS["e"]), "ab") as err,
        ):
            pid = None
            if server is not None:
                request = {"script": argv[1], "argv": argv[2:], "cwd": run_dir, "env": env}
                pid = server.send(request, out.fileno(), err.fileno())
                if pid is None:
                    pool.release(server)
            if pid is None:
                proc = subprocess.Popen(
                    argv, cwd=run_dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
                )
                pid = proc.pid
        job = {"pgid": pid, "start": start_token(pid), "forked": server is not None}
        write_atomic(os.path.join(run_dir, JOB_FILE), json.dumps(job).encode())

        def wait() -> None:
            if job["forked"]:
                code = server.wait_exit(None)
                pool.release(server)
            else:
                code = proc.wait()
            write_atomic(os.path.join(run_dir, EXIT_FILE), str(code).encode())

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        self.jobs.append(waiter)
        return json.dumps(dict(job, run_dir=os.path.realpath(run_dir))).encode()

    def on_started(self) -> None:
        os.read(self.wake_r, 4096)
        while True:
            try:
                cmd, started = self.started.get_nowait()
            except queue.Empty:
                return
            _line, _, rest = cmd.pending.partition(b"\n")
            if started is None:  # the usual way: the command reads the request line itself
                self.fork(cmd)
                continue
            cmd.pending = rest
            head = struct.pack(">cI", b"j", len(started)) + started
            self.fork(cmd, ["follow", cmd.args[1], "0,0,0", cmd.args[2], "pack"], prefix=head)

    # -- the loop ---------------------------------------------------------------------------------
    def read_driver(self) -> bool:
        """Read what the driver sent: a frame's header, then its body; the body of a running command's
        input frame is passed on as it comes (:meth:`pass_input`: in the kernel, ``os.splice``, where it
        can). False when the driver is gone."""
        if self.passing is not None:
            return self.pass_input()
        have = len(self.inbuf)
        need = HEAD.size if have < HEAD.size else HEAD.size + HEAD.unpack_from(self.inbuf)[2]
        data = os.read(0, min(need - have, READ_SIZE))
        if not data:
            return False
        self.inbuf += data
        if len(self.inbuf) < HEAD.size:
            return True
        kind, ident, size = HEAD.unpack_from(self.inbuf)
        cmd = self.cmds.get(ident)
        if kind == b"i" and size and len(self.inbuf) == HEAD.size and cmd is not None and cmd.stdin is not None:
            self.inbuf = bytearray()
            self.passing = (cmd, size)
            return True
        if len(self.inbuf) < HEAD.size + size:
            return True
        body = bytes(self.inbuf[HEAD.size :])
        self.inbuf = bytearray()
        self.on_frame(kind, ident, body)
        return True

    def pass_input(self) -> bool:
        """Move what stdin has of the input frame being passed on to its command (dropped once the
        command no longer reads it); False when the driver is gone."""
        assert self.passing is not None
        cmd, left = self.passing
        if cmd.stdin is not None and SPLICE is not None:
            try:
                moved = SPLICE(0, cmd.stdin, left)
            except OSError:  # the command ended: the rest of its input is read and dropped
                self.close_stdin(cmd)
                return True
        else:
            data = os.read(0, min(left, READ_SIZE))
            self.feed(cmd, data)
            moved = len(data)
        if not moved:
            return False
        self.passing = (cmd, left - moved) if left > moved else None
        return True

    def relay(self, fd: int) -> None:
        cmd = self.by_fd[fd]
        try:
            data = os.read(fd, 1 << 16)
        except OSError:
            data = b""
        if data:
            if self.open:
                self.open = _write_frame(1, cmd.outs[fd], cmd.ident, data)
            return
        self.drop_fd(fd)
        self.finish(cmd)

    def run(self) -> None:
        _grow_pipe(0)  # what the driver sends (when sshd hands it over by a pipe)
        reading = True
        while reading or self.by_fd:
            fds = [*self.by_fd, self.wake_r] + ([0] if reading else [])
            readable, _, _ = select.select(fds, [], [])
            for fd in readable:
                if fd == 0:
                    reading = self.read_driver()
                    if not reading:  # the driver is gone: stop reading what the children write
                        self.open = False
                        for cmd in list(self.cmds.values()):
                            self.close_stdin(cmd)
                elif fd == self.wake_r:
                    self.on_started()
                elif fd in self.by_fd:
                    if self.open:
                        self.relay(fd)
                    else:
                        cmd = self.by_fd[fd]
                        self.drop_fd(fd)
                        self.finish(cmd, send=False)
        for waiter in self.jobs:  # jobs forked here still get their exit codes recorded
            waiter.join()
        for pool in self.pools.values():
            pool.close()


# Runs forkserver_main from the helper's zip, then forgets the zip's `mltrain` (jobs import their own)
_SERVER_BOOT = (
    "import sys; sys.path[0] = {agent!r}; from mltrain.remote.forkserver_main import main; "
    "[sys.modules.pop(m) for m in list(sys.modules) if m.split('.')[0] == 'mltrain']; main()"
)


def job_env(req: dict[str, Any]) -> dict[str, str]:
    """A job's whole environment: the host session's, then the request's ``env``, ``path_prepend`` first on PATH."""
    env = dict(os.environ, **req.get("env", {}))
    if req.get("path_prepend"):
        env["PATH"] = req["path_prepend"] + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")
    return env


def serve(work: str, commands: dict[str, Callable[..., None]], first: str = "") -> None:
    """Serve ``commands`` over this channel until it closes (the module docstring); ``first=probe``:
    answer ``probe`` first (one line), so that connecting to a host costs one round trip."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the connection dropping ends nothing that runs here
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    os.makedirs(work, exist_ok=True)
    if first == "probe":
        commands["probe"](work)
    # nobody reads this channel's stderr: what the helper itself reports goes to a file (never blocks)
    log = os.open(os.path.join(work, "serve.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 2)
    os.close(log)
    Server(work, commands).run()
