"""A pre-warmed fork server, run by a job environment's own Python (standard library only).

``python forkserver_main.py FD MODULES_JSON``: imports the modules named (failures are ignored),
reports ``{"ready": ...}`` on the SOCK_SEQPACKET socket ``FD``, then serves one job at a time: a
request ``{"script", "argv", "cwd", "env"}`` arrives with two file descriptors (the job's stdout and
stderr); the server forks a child that becomes a process group of its own, moves into ``cwd``,
takes ``env`` as its whole environment and ``argv`` as ``sys.argv``, and runs ``script`` as
``__main__`` (``runpy``), exactly as ``python script ...`` would, then exits with the script's
status. The server answers ``{"pid": PID}`` once the child leads its own process group (so a signal
to the group reaches it) and ``{"exit": CODE}`` when the child ended (negative: killed by that
signal). It never runs user code itself, so every job starts from the same clean, warm state. It
ends when the socket closes.
"""

import ctypes
import importlib
import json
import os
import signal
import socket
import sys

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
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


def _child(sock: socket.socket, req: dict, out_fd: int, err_fd: int, grouped: int) -> None:  # pragma: no cover
    code = 1
    try:
        os.setsid()
        os.close(grouped)  # the server reports the pid only now: a signal to the group reaches the job
        if sys.platform.startswith("linux"):
            _die_with_parent()
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # as the interpreter sets them at start-up
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sock.close()
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
        os._exit(code)


def serve(sock: socket.socket) -> None:
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, 4)
        except (ConnectionError, OSError):
            return
        if not data:
            return
        try:
            req = json.loads(data)
            out_fd, err_fd = fds
        except (ValueError, TypeError):
            for fd in fds:
                os.close(fd)
            sock.send(json.dumps({"error": "bad request"}).encode())
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        wait_r, grouped = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(wait_r)
            _child(sock, req, out_fd, err_fd, grouped)
        os.close(grouped)
        os.read(wait_r, 1)  # EOF once the child is a process group of its own (or gone)
        os.close(wait_r)
        os.close(out_fd)
        os.close(err_fd)
        try:
            sock.send(json.dumps({"pid": pid}).encode())
        except OSError:
            pass
        _, status = os.waitpid(pid, 0)
        try:
            sock.send(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode())
        except OSError:
            return


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    del sys.path[0]  # this file's folder is no job's business (each job puts its script's folder there)
    if sys.platform.startswith("linux"):
        _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides; jobs restore the default
    ready = _warm(json.loads(sys.argv[2]))
    import gc

    gc.collect()
    gc.freeze()  # children's collections skip the warm objects: fewer copy-on-write page copies
    sock.send(json.dumps(ready).encode())
    serve(sock)


if __name__ == "__main__":
    main()
