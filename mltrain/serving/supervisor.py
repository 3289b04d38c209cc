"""``python -m mltrain.serving CONFIG.json``: bind the socket, run the workers, watch them, stop gracefully.

The supervisor binds the listening socket once and hands it to ``workers`` worker processes (each loads
the model and runs uvicorn on it), so connections queue in the kernel while a worker restarts. It writes
``ready_file`` ({"pid", "port", "url", "name"}) atomically once every worker can score, restarts a worker
that dies, and, with ``memory_gb``, kills and restarts the largest worker whenever the workers' resident
memory (with their child processes) exceeds the limit. SIGTERM/SIGINT stop it gracefully: workers finish
in-flight requests (up to ``graceful_timeout_s``), the ready file is removed, exit code 0.
Exit codes: 0 stopped, 2 refused to start (config or model; the reason is printed), 1 gave up.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from mltrain.serving.auth import KeyChecker
from mltrain.serving.config import ServingConfig, parse_config, warn_unknown_keys
from mltrain.serving.errors import ServingError
from mltrain.serving.logs import setup_logging
from mltrain.serving.memory import GIB, tree_rss
from mltrain.serving.metrics import Metrics, create_shared_block
from mltrain.serving.model import verify_file
from mltrain.serving.worker import ENV

log = logging.getLogger("mltrain.serving")

MAX_START_FAILURES = 5  # consecutive failed (re)starts of one worker before the supervisor gives up
MAX_IDLE_MEMORY_KILLS = 3  # consecutive kills of a worker that was over the limit right after starting
QUICK_EXIT_S = 10.0  # a worker that dies sooner than this after starting is restarted with back-off


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    ready_fd: int | None = None
    ready: bool = False
    started_at: float = 0.0
    checks_since_ready: int = 0
    killed_for_memory: bool = False
    start_failures: int = 0
    quick_exits: int = 0
    idle_memory_kills: int = 0
    restart_at: float | None = None
    errors: list[str] = field(default_factory=list)
    pipe_data: bytes = b""


def _bind(host: str, port: int) -> socket.socket:
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
        sock.listen(2048)
    except OSError as exc:
        raise ServingError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", "choose another port, or port 0 for a free one"
        ) from None
    sock.set_inheritable(True)
    return sock


def _write_atomic(path: str, data: dict[str, Any]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, target)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    def __init__(self, cfg: ServingConfig, raw: dict[str, Any], sock: socket.socket) -> None:
        self.cfg = cfg
        self.raw = raw
        self.sock = sock
        self.port = sock.getsockname()[1]
        host = cfg.host if ":" not in cfg.host else f"[{cfg.host}]"
        self.url = f"http://{host}:{self.port}"
        self.slots = cfg.workers + 1
        self.metrics_fd = create_shared_block(self.slots)
        self.metrics = Metrics(slots=self.slots, slot=cfg.workers, fd=self.metrics_fd)
        self.workers = [Worker(i) for i in range(cfg.workers)]
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        self.stopping = False
        self.signals = 0
        self.announced = False
        self.exit_code = 0

    # -- signals ----------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        self.signals += 1
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass

    def install_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    # -- workers ----------------------------------------------------------------------------------
    def _env(self, w: Worker, ready_w: int) -> dict[str, str]:
        env = dict(os.environ)
        if self.cfg.workers > 1:  # keep BLAS/OpenMP pools from oversubscribing the cores
            try:
                cpus = len(os.sched_getaffinity(0))
            except AttributeError:
                cpus = os.cpu_count() or 1
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                env.setdefault(var, str(max(1, cpus // self.cfg.workers)))
        env[ENV] = json.dumps(
            {
                "config": self.raw,
                "index": w.index,
                "slots": self.slots,
                "workers": self.cfg.workers,
                "parent": os.getpid(),
                "listen_fd": self.sock.fileno(),
                "metrics_fd": self.metrics_fd,
                "ready_fd": ready_w,
            }
        )
        return env

    def start(self, w: Worker) -> None:
        ready_r, ready_w = os.pipe()
        cmd = [sys.executable, "-m", "mltrain.serving.worker", self.cfg.name, str(w.index)]
        try:
            w.proc = subprocess.Popen(
                cmd,
                env=self._env(w, ready_w),
                pass_fds=(self.sock.fileno(), self.metrics_fd, ready_w),
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(ready_w)
        os.set_blocking(ready_r, False)
        w.ready_fd = ready_r
        w.pipe_data = b""
        w.ready = False
        w.started_at = time.monotonic()
        w.checks_since_ready = 0
        w.killed_for_memory = False
        w.restart_at = None
        self.selector.register(ready_r, selectors.EVENT_READ, w)

    def _close_ready_pipe(self, w: Worker) -> None:
        if w.ready_fd is not None:
            self.selector.unregister(w.ready_fd)
            os.close(w.ready_fd)
            w.ready_fd = None

    def _on_ready_pipe(self, w: Worker, until_eof: bool = False) -> None:
        """Read what the worker wrote: ``ready``, or ``error:<message>`` before it exits; EOF closes the pipe."""
        while w.ready_fd is not None:
            try:
                data = os.read(w.ready_fd, 1 << 16)
            except BlockingIOError:  # nothing more for now (a forked grandchild may still hold the pipe open)
                if until_eof:
                    self._finish_pipe(w)
                return
            except OSError:
                data = b""
            w.pipe_data += data
            if w.pipe_data == b"ready" and not w.ready:
                w.ready = True
                w.start_failures = 0
            if not data:
                self._finish_pipe(w)
            elif not until_eof:
                return

    def _finish_pipe(self, w: Worker) -> None:
        if w.pipe_data.startswith(b"error:"):
            w.errors.append(w.pipe_data[6:].decode(errors="replace"))
        self._close_ready_pipe(w)

    def _schedule_restart(self, w: Worker, now: float) -> None:
        lived = now - w.started_at
        w.quick_exits = w.quick_exits + 1 if lived < QUICK_EXIT_S else 0
        delay = 0.0 if w.quick_exits <= 1 else min(30.0, 0.5 * 2 ** (w.quick_exits - 1))
        w.restart_at = now + delay
        if delay:
            log.warning(
                "worker %d: restarting in %.1f s (it stopped %d times in a row soon after starting)",
                w.index,
                delay,
                w.quick_exits,
            )

    def _on_exit(self, w: Worker, code: int, now: float) -> None:
        self._on_ready_pipe(w, until_eof=True)  # the process is gone: the pipe holds all it wrote, then EOF
        pid = w.proc.pid if w.proc else 0
        was_ready = w.ready
        w.proc, w.ready = None, False
        if self.stopping:
            return
        if not self.announced:  # initial start: any failure refuses the whole server
            reason = w.errors[-1] if w.errors else f"worker {w.index} (pid {pid}) {_describe_exit(code)} while starting"
            print(f"mltrain.serving: error: {reason}", file=sys.stderr)
            self.exit_code = 2 if w.errors else 1
            self.stopping = True
            return
        if w.killed_for_memory:
            self._schedule_restart(w, now)
            return
        self.metrics.restarted("exit")
        if not was_ready:
            w.start_failures += 1
            reason = w.errors[-1] if w.errors else _describe_exit(code)
            log.error("worker %d (pid %d) failed to start: %s", w.index, pid, reason)
            if w.start_failures >= MAX_START_FAILURES:
                log.error("worker %d failed to start %d times in a row; giving up", w.index, w.start_failures)
                self.exit_code = 1
                self.stopping = True
                return
        else:
            log.error("worker %d (pid %d) %s; restarting it", w.index, pid, _describe_exit(code))
        self._schedule_restart(w, now)

    def _check_memory(self) -> None:
        limit = self.cfg.memory_gb
        running = [w for w in self.workers if w.proc is not None and w.ready and not w.killed_for_memory]
        if limit is None or not running:
            return
        sizes = tree_rss([w.proc.pid for w in running if w.proc])
        total = sum(sizes.values())
        for w in running:
            w.checks_since_ready += 1
        if total <= limit * GIB:
            for w in running:
                if w.checks_since_ready > 2:
                    w.idle_memory_kills = 0
            return
        victim = max(running, key=lambda w: sizes.get(w.proc.pid, 0) if w.proc else 0)
        assert victim.proc is not None
        rss = sizes.get(victim.proc.pid, 0)
        log.error(
            "memory: workers use %.3f GiB, over the limit memory_gb=%g; killing worker %d (pid %d, %.3f GiB) "
            "and restarting it",
            total / GIB,
            limit,
            victim.index,
            victim.proc.pid,
            rss / GIB,
        )
        victim.killed_for_memory = True
        self.metrics.restarted("memory")
        if victim.checks_since_ready <= 1:
            victim.idle_memory_kills += 1
            if victim.idle_memory_kills >= MAX_IDLE_MEMORY_KILLS:
                log.error(
                    "memory: a freshly started worker already uses %.3f GiB; memory_gb=%g is too small for this "
                    "model with %d worker(s); giving up (raise memory_gb or lower workers)",
                    rss / GIB,
                    limit,
                    self.cfg.workers,
                )
                self.exit_code = 1
                self.stopping = True
        try:
            victim.proc.kill()
        except ProcessLookupError:
            pass

    # -- main loop --------------------------------------------------------------------------------
    def _announce(self) -> None:
        self.announced = True
        if self.cfg.ready_file:
            _write_atomic(
                self.cfg.ready_file, {"pid": os.getpid(), "port": self.port, "url": self.url, "name": self.cfg.name}
            )
        version = f":{self.cfg.model_version}" if self.cfg.model_version else ""
        log.info(
            "serving %s (model %s%s) on %s with %d worker(s)%s",
            self.cfg.name,
            self.cfg.model_name,
            version,
            self.url,
            self.cfg.workers,
            ", key auth on" if self.cfg.auth else "",
        )

    def run(self) -> int:
        for w in self.workers:
            self.start(w)
        next_check = time.monotonic() + self.cfg.watchdog_interval_s
        while not self.stopping:
            timeout = max(0.0, min(next_check - time.monotonic(), 0.5))
            for key, _ in self.selector.select(timeout):
                if key.data is None:
                    try:
                        os.read(self.wake_r, 512)
                    except OSError:
                        pass
                else:
                    self._on_ready_pipe(key.data)
            now = time.monotonic()
            for w in self.workers:
                if w.proc is not None:
                    code = w.proc.poll()
                    if code is not None:
                        self._on_exit(w, code, now)
                elif w.restart_at is not None and now >= w.restart_at and not self.stopping:
                    self.start(w)
            if self.stopping:
                break
            if not self.announced and all(w.ready for w in self.workers):
                self._announce()
            if now >= next_check:
                next_check = now + self.cfg.watchdog_interval_s
                self._check_memory()
        self.shutdown()
        return self.exit_code

    def shutdown(self) -> None:
        alive = [w for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for w in alive:
            assert w.proc is not None
            try:
                w.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.cfg.graceful_timeout_s + 2.0
        signals_seen = self.signals
        for w in alive:
            assert w.proc is not None
            while w.proc.poll() is None:
                if time.monotonic() > deadline or self.signals > max(signals_seen, 1):
                    log.warning("worker %d (pid %d) did not stop in time; killing it", w.index, w.proc.pid)
                    w.proc.kill()
                    w.proc.wait()
                    break
                time.sleep(0.05)
        for w in self.workers:
            self._close_ready_pipe(w)
        self.sock.close()
        if self.announced and self.cfg.ready_file:
            try:
                if json.loads(Path(self.cfg.ready_file).read_text()).get("pid") == os.getpid():
                    os.unlink(self.cfg.ready_file)
            except (OSError, ValueError):
                pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m mltrain.serving CONFIG.json", file=sys.stderr)
        return 2
    setup_logging("supervisor")
    try:
        raw = json.loads(Path(args[0]).read_text(encoding="utf-8"))
        cfg = parse_config(raw)
        warn_unknown_keys(cfg)
        verify_file(cfg)  # refuse a tampered file at once (each worker checks again before it loads)
        if cfg.auth and cfg.keys_file:
            KeyChecker(cfg.keys_file)
        sock = _bind(cfg.host, cfg.port)
    except ServingError as exc:
        print(f"mltrain.serving: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (OSError, ValueError) as exc:
        print(f"mltrain.serving: error: cannot read config file {args[0]}: {exc}", file=sys.stderr)
        return 2
    supervisor = Supervisor(cfg, raw, sock)
    supervisor.install_signals()
    return supervisor.run()
