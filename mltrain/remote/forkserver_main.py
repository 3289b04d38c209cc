"""A pre-warmed fork server, run by a job environment's own Python (standard library only).

``python forkserver_main.py FD MODULES_JSON``: imports the modules named (failures are ignored),
reports ``{"ready": ...}`` on the SOCK_SEQPACKET socket ``FD``, then serves one job at a time: a
request ``{"script", "argv", "cwd", "env"}`` arrives with two file descriptors (the job's stdout and
stderr); the server hands it to a child it forked ahead (between jobs, so no job waits for a fork),
which already leads a process group of its own. The child moves into ``cwd``, takes ``env`` as its
whole environment and ``argv`` as ``sys.argv``, and runs ``script`` as ``__main__``, exactly as
``python script ...`` would, then exits with the script's status, which it tells the server first
(the kernel's tear-down of a large process is not waited for). The server answers
``{"pid": PID}`` at once (a signal to the group reaches the job) and ``{"exit": CODE}`` when the
job ended (negative: killed by that signal). It never runs user code itself, so every job starts
from the same clean, warm state. It ends when the socket closes, and its spare child with it.
"""

import ctypes
import importlib
import json
import os
import select
import signal
import socket
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _warm(modules: list) -> dict:
    imported, failed = [], []
    for name in modules:
        try:
            importlib.import_module(name)
            imported.append(name)
        except BaseException:  # noqa: BLE001 - a module that cannot be imported here is simply not warm
            failed.append(name)
    return {"ready": True, "imported": imported, "failed": failed}


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _run_main(path: str) -> None:
    """Run the file ``path`` as ``__main__``, as ``python path`` does (absolute ``__file__``)."""
    import builtins
    import importlib.machinery
    import types

    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = builtins
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    main.__spec__ = None
    main.__cached__ = None
    sys.modules["__main__"] = main
    with open(path, "rb") as f:
        source = f.read()
    exec(compile(source, path, "exec", dont_inherit=True), main.__dict__)  # noqa: S102 - the job's own script


def _child(sock: socket.socket, jobs: socket.socket, grouped: int) -> None:  # pragma: no cover
    """A child forked ahead of its job: it leads a process group of its own, then waits for the job
    (the request and its stdout and stderr) on ``jobs``; it ends when the server ends first."""
    code = 1
    try:
        os.setsid()
        os.close(grouped)  # the server hands it a job only now: a signal to the group reaches the job
        if sys.platform.startswith("linux"):
            die_with_parent()
        sock.close()
        try:
            data, fds, _flags, _addr = socket.recv_fds(jobs, 1 << 20, 4)
        except OSError:
            data, fds = b"", []
        if not data or len(fds) != 2:
            os._exit(0)
        req = json.loads(data)
        out_fd, err_fd = fds
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # as the interpreter sets them at start-up
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        for fd in (devnull, out_fd, err_fd):
            os.close(fd)
        import io

        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True)
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True
        )
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        script = req["script"]
        path = os.path.abspath(script)
        sys.argv = [script, *req["argv"]]
        sys.path.insert(0, os.path.dirname(path))  # as `python script`: its folder first
        extra = [p for p in req["env"].get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
        sys.path[1:1] = extra  # the job's own PYTHONPATH (e.g. its run folder's in-script API) next
        code = 0
        try:
            _run_main(path)
        except SystemExit as exc:
            code = _exit_code(exc)
        except BaseException as exc:  # noqa: BLE001 - reported as python would (from the script's frame on)
            import traceback

            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None)
            code = 128 + signal.SIGINT if isinstance(exc, KeyboardInterrupt) else 1
        try:  # what the interpreter does at exit: join non-daemon threads, run atexit handlers
            import threading

            threading._shutdown()  # type: ignore[attr-defined]
        except BaseException:  # noqa: BLE001
            pass
        import atexit

        atexit._run_exitfuncs()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
        try:  # the exit code now: the server need not wait for the kernel to tear this process down
            jobs.send(json.dumps({"exit": code}).encode())
        except BaseException:  # noqa: BLE001
            pass
        os._exit(code)


def _spare(sock: socket.socket) -> tuple[int, socket.socket]:
    """Fork a child ahead of its job (:func:`_child`): its pid, once it leads its own process group,
    and the socket its job goes to. Forked between jobs, so a job starts without waiting for a fork."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sys.stdout.flush()
    sys.stderr.flush()
    wait_r, grouped = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(wait_r)
        ours.close()
        _child(sock, theirs, grouped)
    theirs.close()
    os.close(grouped)
    os.read(wait_r, 1)  # EOF once the child is a process group of its own (or gone)
    os.close(wait_r)
    return pid, ours


def _hand(spare: tuple[int, socket.socket], data: bytes, fds: list[int]) -> bool:
    """Give a job to a spare child; False when it is gone (it is then reaped)."""
    pid, jobs = spare
    try:
        socket.send_fds(jobs, [data], fds)
        return True
    except OSError:
        jobs.close()
        os.waitpid(pid, 0)
        return False


def _job_exit(pid: int, jobs: socket.socket) -> tuple[int, bool]:
    """The job's exit code: as it sends it just before it exits, else (killed) as ``waitpid`` has it;
    and whether the child was reaped. (Its socket may outlive it in processes it forked: hence the
    ``waitpid`` look every 50 ms rather than waiting for the socket to close.)"""
    try:
        while True:
            readable, _, _ = select.select([jobs], [], [], 0.05)
            if readable:
                data = jobs.recv(256)
                if data:
                    return int(json.loads(data)["exit"]), False
                _, status = os.waitpid(pid, 0)  # closed without a word: it is gone
                return os.waitstatus_to_exitcode(status), True
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), True
    except (OSError, ValueError, KeyError, TypeError):
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), True
    finally:
        jobs.close()


def serve(sock: socket.socket) -> None:
    spare: tuple[int, socket.socket] | None = None
    while True:
        if spare is None:
            spare = _spare(sock)
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, 4)
        except (ConnectionError, OSError):
            return
        if not data:
            return
        try:
            json.loads(data)
            if len(fds) != 2:
                raise ValueError(fds)
        except (ValueError, TypeError):
            for fd in fds:
                os.close(fd)
            sock.send(json.dumps({"error": "bad request"}).encode())
            continue
        if not _hand(spare, data, fds):  # the spare died (killed from outside): fork one now
            spare = _spare(sock)
            _hand(spare, data, fds)
        (pid, jobs), spare = spare, None
        for fd in fds:
            os.close(fd)
        try:
            sock.send(json.dumps({"pid": pid}).encode())
        except OSError:
            pass
        code, reaped = _job_exit(pid, jobs)
        try:
            sock.send(json.dumps({"exit": code}).encode())
        except OSError:
            return
        finally:
            if not reaped:
                os.waitpid(pid, 0)


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    del sys.path[0]  # this file's folder is no job's business (each job puts its script's folder there)
    if sys.platform.startswith("linux"):
        die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides; jobs restore the default
    ready = _warm(json.loads(sys.argv[2]))
    import gc

    gc.collect()
    gc.freeze()  # children's collections skip the warm objects: fewer copy-on-write page copies
    sock.send(json.dumps(ready).encode())
    serve(sock)


if __name__ == "__main__":
    main()
