"""The entrypoint of an mltrain job on a Ray node: ``python -m mltrain.compute.ray_job SCRIPT ARGS...``.

Standard library only (and :mod:`mltrain.procs`): it is shipped to the cluster with the in-script API
(``py_modules``) and runs in whatever Python the job's runtime environment has. It copies the job's
working_dir (the snapshot) into a private run folder, runs the script there as a child process, and writes one
stream to its stdout, which Ray keeps as the job's log and the driver follows (``tail_job_logs``):

- the script's stdout lines, as they are;
- marked lines (``MARK + kind + payload``; MARK carries a per-job nonce, so a script's output is
  never taken for one): stderr lines (``e``), metrics records of ``.mltrain/metrics.jsonl`` as
  they are written (``m``), the node it runs on (``s``), and at the end outputs/, logs/ and the
  run's uploads and metrics as a base64 tar.gz in chunks (``z``, then ``Z`` with its sha256 and
  size, or ``!`` when it is too large) and the script's exit code (``x``).

So everything comes back through the job's log, which Ray streams from whichever node ran it.
SIGTERM (Ray's ``stop_job``, sent to the whole process tree) reaches the script; after the grace
period the script's processes are killed, and the outputs are still sent.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
from typing import IO

from mltrain.procs import descendants

MARK_ENV = "MLTRAIN_RAY_MARK"
GRACE_ENV = "MLTRAIN_RAY_GRACE_S"
MAX_OUTPUT_ENV = "MLTRAIN_RAY_MAX_OUTPUT_MB"
WRAPPER_ENV = (MARK_ENV, GRACE_ENV, MAX_OUTPUT_ENV)
STDERR, METRICS, STARTED, CHUNK, ARCHIVE_END, TOO_LARGE, EXIT = "e", "m", "s", "z", "Z", "!", "x"
PARTIAL = "p"  # a last stdout line without its newline; "E": the same for stderr
PACKED = ("outputs", "logs", ".mltrain/uploads", ".mltrain/metrics.jsonl")
CHUNK_BYTES = 48 * 1024
METRICS_FILE = ".mltrain/metrics.jsonl"
RUN_INFO_FILE = ".mltrain/run.json"


class Emitter:
    """Whole lines to stdout (the job's log), from several threads."""

    def __init__(self, mark: str) -> None:
        self.mark = mark
        self._lock = threading.Lock()
        self._out = sys.stdout.buffer

    def raw(self, line: bytes) -> None:
        text = line.decode("utf-8", errors="replace").encode()  # the log is read as UTF-8 text
        with self._lock:
            self._out.write(text)
            self._out.flush()

    def marked(self, kind: str, payload: str) -> None:
        self.raw(f"{self.mark}{kind}{payload}\n".encode())


def _pump(stream: IO[bytes], emit: Emitter, stderr: bool) -> None:
    for line in iter(stream.readline, b""):
        text = line.decode("utf-8", errors="replace")
        if text.endswith("\n"):
            if stderr:
                emit.marked(STDERR, text[:-1].replace("\r", ""))
            elif text.startswith(emit.mark):
                emit.marked(PARTIAL, json.dumps(text))  # only a script that knows the nonce gets here
            else:
                emit.raw(line)
        else:
            emit.marked("E" if stderr else PARTIAL, json.dumps(text))


def _tail_metrics(path: str, emit: Emitter, done: threading.Event) -> None:
    offset, partial = 0, b""
    while True:
        finished = done.is_set()
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        offset += len(data)
        lines = (partial + data).split(b"\n")
        partial = lines.pop()
        for line in lines:
            if line.strip():
                emit.marked(METRICS, line.decode("utf-8", errors="replace"))
        if finished:
            return
        done.wait(0.25)


def _kill_tree(pid: int) -> None:
    for p in [pid, *descendants(pid)]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def pack_outputs(run_dir: str, max_bytes: float) -> tuple[bytes | None, int]:
    """outputs/, logs/, uploads and metrics as tar.gz bytes (None when larger than ``max_bytes``)."""
    total = 0
    members = []
    for top in PACKED:
        base = os.path.join(run_dir, top)
        if os.path.isfile(base):
            members.append(top)
            total += os.path.getsize(base)
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                full = os.path.join(dirpath, name)
                if os.path.isfile(full) and not os.path.islink(full):
                    members.append(os.path.relpath(full, run_dir))
                    total += os.path.getsize(full)
    if total > max_bytes:
        return None, total
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for rel in members:
            tar.add(os.path.join(run_dir, rel), arcname=rel, recursive=False)
    return buf.getvalue(), total


def make_run_dir(source: str, run_id: str | None, experiment: str | None, parent: str | None = None) -> str:
    """A private run folder on this node (in ``parent``, default the temporary folder): a copy of
    ``source`` (the job's working_dir) with the run's info."""
    run_dir = tempfile.mkdtemp(prefix="mltrain-run-", dir=parent)
    try:
        shutil.copytree(source, run_dir, symlinks=True, dirs_exist_ok=True)
        os.makedirs(os.path.join(run_dir, ".mltrain"), exist_ok=True)
        with open(os.path.join(run_dir, RUN_INFO_FILE), "w") as f:
            json.dump({"run_id": run_id, "experiment": experiment}, f)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir


def _send_archive(run_dir: str, emit: Emitter) -> None:
    max_mb = float(os.environ.get(MAX_OUTPUT_ENV) or 1024)
    data, total = pack_outputs(run_dir, max_mb * 1024 * 1024)
    if data is None:
        emit.marked(TOO_LARGE, f"{total} {max_mb:g}")
        return
    for start in range(0, len(data), CHUNK_BYTES):
        emit.marked(CHUNK, base64.b64encode(data[start : start + CHUNK_BYTES]).decode())
    emit.marked(ARCHIVE_END, f"{hashlib.sha256(data).hexdigest()} {len(data)}")


def main(argv: list[str]) -> int:
    mark = os.environ.get(MARK_ENV, "")
    if not mark or len(argv) < 1:
        print("usage: MLTRAIN_RAY_MARK=... python -m mltrain.compute.ray_job SCRIPT [ARGS...]", file=sys.stderr)
        return 2
    grace = float(os.environ.get(GRACE_ENV) or 5)
    emit = Emitter(mark)
    run_dir = make_run_dir(os.getcwd(), os.environ.get("MLTRAIN_RUN_ID"), os.environ.get("MLTRAIN_EXPERIMENT"))
    try:
        env = {k: v for k, v in os.environ.items() if k not in WRAPPER_ENV}
        env["MLTRAIN_RUN_DIR"] = run_dir
        emit.marked(STARTED, socket.gethostname())
        child = subprocess.Popen(
            [sys.executable, argv[0], *argv[1:]],
            cwd=run_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        stopping = threading.Event()

        def on_signal(signum: int, _frame: object) -> None:
            # Ray signals every process of the job itself; the script got it too: give it the grace period
            if not stopping.is_set():
                stopping.set()
                timer = threading.Timer(grace, _kill_tree, args=(child.pid,))
                timer.daemon = True
                timer.start()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        assert child.stdout is not None and child.stderr is not None
        pumps = [
            threading.Thread(target=_pump, args=(child.stdout, emit, False), daemon=True),
            threading.Thread(target=_pump, args=(child.stderr, emit, True), daemon=True),
        ]
        done = threading.Event()
        metrics = threading.Thread(
            target=_tail_metrics, args=(os.path.join(run_dir, METRICS_FILE), emit, done), daemon=True
        )
        for t in (*pumps, metrics):
            t.start()
        code = child.wait()
        if stopping.is_set():
            _kill_tree(child.pid)  # what the script left behind
        for t in pumps:
            t.join(timeout=10)
        done.set()
        metrics.join(timeout=30)
        _send_archive(run_dir, emit)
        emit.marked(EXIT, str(code))
        return code if code >= 0 else 128 - code
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
