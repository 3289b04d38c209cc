"""The entrypoint of an mltrain job on a Ray node: ``python -m mltrain.remote.ray_job SCRIPT ARGS...``.

Standard library only (and :mod:`mltrain.remote.procs`): it is shipped to the cluster with the in-script API
(``py_modules``) and runs in whatever Python the job's runtime environment has. It copies the job's
working_dir (the snapshot; with an object-store artifact root, the list of its files, which it fetches
from the store into the node's cache itself: :func:`~mltrain.remote.inputs.fetch_snapshot`) into a
private run folder, runs the script there as a child process, and writes one stream to its stdout,
which Ray keeps as the job's log and the driver follows (``tail_job_logs``):

- the script's stdout lines, as they are;
- marked lines (``MARK + kind + payload``; MARK carries a per-job nonce, so a script's output is
  never taken for one): stderr lines (``e``), metrics records of ``.mltrain/metrics.jsonl`` as
  they are written (``m``), the node it runs on (``s``), and at the end outputs/, logs/ and the
  run's uploads and metrics as a base64 tar.gz in chunks (``z``, then ``Z`` with its sha256 and
  size, or ``!`` when it is too large) and the script's exit code (``x``).

So everything comes back through the job's log, which Ray streams from whichever node ran it; except,
with an object-store artifact root, outputs/ and logs/: the node uploads them itself by the presigned
POST policy it got with the job (:data:`OUTPUTS_POST_ENV`), announces each file that went (``o``: its
path, sha256, size and staged number, which the driver has the store check) and packs only the rest.

Stopping: Ray's ``stop_job`` signals the processes it finds at that moment, so a script started a
moment later would never hear of it, and one started a moment earlier would hear it twice if this
wrapper passed it on. The driver therefore has Ray send SIGINT (``RAY_JOB_STOP_SIGNAL``), the script
starts with SIGINT blocked (so neither Ray's SIGINT nor a handler of its own sees one), and this
wrapper alone turns a stop into one SIGTERM to the script's process tree, then SIGKILL after the grace
period; the outputs are still sent. A stop that comes before the script started means it never starts.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from mltrain.remote.inputs import (
    CARRIED_DIR,
    SNAPSHOT_FILE,
    InputError,
    changed_mounts,
    deliver_on_node,
    fetch_snapshot,
    mount_problem,
    node_cache,
    read_manifests,
    release_run_folder,
    resolve_job,
)
from mltrain.remote.node_outputs import post_outputs
from mltrain.remote.procs import descendants

MARK_ENV = "MLTRAIN_RAY_MARK"
GRACE_ENV = "MLTRAIN_RAY_GRACE_S"
MAX_OUTPUT_ENV = "MLTRAIN_RAY_MAX_OUTPUT_MB"
OUTPUTS_POST_ENV = "MLTRAIN_RAY_OUTPUTS_POST"  # {url, fields, key}: the node uploads outputs/ and logs/ itself
WRAPPER_ENV = (MARK_ENV, GRACE_ENV, MAX_OUTPUT_ENV, OUTPUTS_POST_ENV)
STDERR, METRICS, STARTED, CHUNK, ARCHIVE_END, TOO_LARGE, EXIT = "e", "m", "s", "z", "Z", "!", "x"
STORED = "o"  # a file the node uploaded into the artifact root itself: [path, sha256, size, N]
UNREACHABLE = "u"  # the snapshot could not be fetched from the artifact root (why): the driver carries it
PARTIAL = "p"  # a last stdout line without its newline; "E": the same for stderr
PACKED = ("outputs", "logs", ".mltrain/uploads", ".mltrain/metrics.jsonl")
CHUNK_BYTES = 48 * 1024
METRICS_FILE = ".mltrain/metrics.jsonl"
RUN_INFO_FILE = ".mltrain/run.json"


def entrypoint(script: str, arguments: list[str]) -> str:
    """The job's shell command: this wrapper in place of the shell (``exec``), so the process Ray signals
    to stop the job is the wrapper, however early the stop comes."""
    return f"exec python -m mltrain.remote.ray_job {shlex.join([script, *arguments])}"


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


def _signal_tree(pid: int, sig: int) -> None:
    for p in [pid, *descendants(pid)]:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


class Stopper:
    """Turns a stop (SIGINT or SIGTERM to this process, at any time) into exactly one SIGTERM to the
    script's process tree once the script exists, and SIGKILL ``grace`` seconds later."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.asked = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, _signum: int, _frame: object) -> None:
        self.asked.set()

    def attach(self, pid: int) -> None:
        """The script was started as ``pid``: stop it now if asked already, or when asked (by one
        thread, so once)."""
        threading.Thread(target=self._stop, args=(pid,), name="mltrain-stop", daemon=True).start()

    def _stop(self, pid: int) -> None:
        self.asked.wait()
        _signal_tree(pid, signal.SIGTERM)
        time.sleep(self.grace)
        _signal_tree(pid, signal.SIGKILL)


def _script_signals() -> None:
    """In the script's process before it execs (no other thread exists yet): Ray's stop signal is the wrapper's."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def pack_outputs(run_dir: str, max_bytes: float, skip: frozenset[str] = frozenset()) -> tuple[bytes | None, int]:
    """outputs/, logs/, uploads and metrics but the files in ``skip`` as tar.gz bytes (None when larger
    than ``max_bytes``)."""
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
                if os.path.isfile(full) and not os.path.islink(full) and os.path.relpath(full, run_dir) not in skip:
                    members.append(os.path.relpath(full, run_dir))
                    total += os.path.getsize(full)
    if total > max_bytes:
        return None, total
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for rel in members:
            tar.add(os.path.join(run_dir, rel), arcname=rel, recursive=False)
    return buf.getvalue(), total


class SnapshotUnreachable(Exception):
    """The node could not fetch the job's snapshot from the artifact root itself: the driver carries it."""


def make_run_dir(
    source: str,
    run_id: str | None,
    experiment: str | None,
    parent: str | None = None,
    log: Callable[[str], None] | None = None,
) -> str:
    """A private run folder on this node (in ``parent``, default the temporary folder): a copy of
    ``source`` (the job's working_dir) with the run's info; the snapshot fetched into it when ``source``
    lists it (SnapshotUnreachable when that cannot be done)."""
    run_dir = tempfile.mkdtemp(prefix="mltrain-run-", dir=parent)
    try:
        # inputs carried with the job: read from there, never copied; the snapshot's list: fetched
        staged = {os.path.join(source, CARRIED_DIR), os.path.join(source, SNAPSHOT_FILE)}

        def skip(folder: str, names: list[str]) -> list[str]:
            return [n for n in names if os.path.join(folder, n) in staged]

        shutil.copytree(source, run_dir, symlinks=True, dirs_exist_ok=True, ignore=skip)
        problem = fetch_snapshot(source, run_dir, log)
        if problem is not None:
            raise SnapshotUnreachable(problem)
        os.makedirs(os.path.join(run_dir, ".mltrain"), exist_ok=True)
        with open(os.path.join(run_dir, RUN_INFO_FILE), "w") as f:
            json.dump({"run_id": run_id, "experiment": experiment}, f)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir


def store_outputs(
    run_dir: str, policy: dict[str, Any] | None, max_bytes: float, say: Callable[[str], None]
) -> tuple[list[list[Any]], bytes | None, int]:
    """outputs/, logs/, uploads and metrics of a run for the driver: uploaded into the artifact root by
    the node itself when it has a presigned POST ``policy`` (:func:`post_outputs`: ``[path, sha256, size,
    N]`` of each that went; those the store did not take are said), the rest packed (:func:`pack_outputs`:
    the archive, None when too large, and its size)."""
    sent = post_outputs(run_dir, policy, max_bytes, say) if policy else []
    data, total = pack_outputs(run_dir, max_bytes, frozenset(str(e[0]) for e in sent))
    return sent, data, total


def _send_outputs(run_dir: str, emit: Emitter) -> None:
    """outputs/, logs/, uploads and metrics to the driver: into the artifact root by the node itself when
    the job has a policy for it (announced), the rest as an archive through the log."""
    max_mb = float(os.environ.get(MAX_OUTPUT_ENV) or 1024)
    policy = os.environ.get(OUTPUTS_POST_ENV)

    def say(line: str) -> None:
        emit.marked(STDERR, f"[mltrain] {line}")

    sent, data, total = store_outputs(run_dir, json.loads(policy) if policy else None, max_mb * 1024 * 1024, say)
    for entry in sent:
        emit.marked(STORED, json.dumps(entry))
    if data is None:
        emit.marked(TOO_LARGE, f"{total} {max_mb:g}")
        return
    for start in range(0, len(data), CHUNK_BYTES):
        emit.marked(CHUNK, base64.b64encode(data[start : start + CHUNK_BYTES]).decode())
    emit.marked(ARCHIVE_END, f"{hashlib.sha256(data).hexdigest()} {len(data)}")


def main(argv: list[str]) -> int:
    mark = os.environ.get(MARK_ENV, "")
    if not mark or len(argv) < 1:
        print("usage: MLTRAIN_RAY_MARK=... python -m mltrain.remote.ray_job SCRIPT [ARGS...]", file=sys.stderr)
        return 2
    stopper = Stopper(float(os.environ.get(GRACE_ENV) or 5))  # first: a stop that comes early is kept
    emit = Emitter(mark)
    try:
        run_dir = make_run_dir(
            os.getcwd(),
            os.environ.get("MLTRAIN_RUN_ID"),
            os.environ.get("MLTRAIN_EXPERIMENT"),
            log=lambda x: emit.marked(STDERR, f"[mltrain] {x}"),
        )
    except SnapshotUnreachable as exc:
        emit.marked(UNREACHABLE, str(exc))
        return 3
    try:
        env = {k: v for k, v in os.environ.items() if k not in WRAPPER_ENV}
        env["MLTRAIN_RUN_DIR"] = run_dir
        emit.marked(STARTED, socket.gethostname())
        if stopper.asked.is_set():
            code = -int(signal.SIGTERM)  # stopped before the script started: it never does
        else:
            try:
                paths = deliver_on_node(
                    os.getcwd(), run_dir, socket.gethostname(), lambda x: emit.marked(STDERR, f"[mltrain] {x}")
                )
            except (InputError, OSError) as exc:
                emit.marked(STDERR, f"mltrain: the job's inputs could not be delivered: {exc}")
                code = 1  # the script never starts
            else:
                argv, env = resolve_job(argv, env, paths)
                code = _run_script(argv, run_dir, env, emit, stopper)
                changed = changed_mounts(node_cache(), read_manifests(os.getcwd())[0]) if paths else []
                if changed:
                    emit.marked(STDERR, f"[mltrain] {mount_problem(changed, socket.gethostname())}")
        _send_outputs(run_dir, emit)
        emit.marked(EXIT, str(code))
        return code if code >= 0 else 128 - code
    finally:
        release_run_folder(run_dir)


def _run_script(argv: list[str], run_dir: str, env: dict[str, str], emit: Emitter, stopper: Stopper) -> int:
    """Run the script in ``run_dir``, its output and metrics streamed through ``emit``; its exit code."""
    child = subprocess.Popen(
        [sys.executable, argv[0], *argv[1:]],
        cwd=run_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_script_signals,  # noqa: PLW1509 - no other thread exists yet
    )
    stopper.attach(child.pid)
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
    if stopper.asked.is_set():
        _signal_tree(child.pid, signal.SIGKILL)  # what the script left behind
    for t in pumps:
        t.join(timeout=10)
    done.set()
    metrics.join(timeout=30)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
