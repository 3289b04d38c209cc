"""Jobs on an SSH host (commands of :mod:`mltrain.remote.ssh_agent`): ``start`` (under a supervisor,
in a process group of its own), ``status``, ``stop``/``kill``, ``follow`` (frames of output, metrics
and heartbeats), ``pack`` (outputs/ and logs/ as a tar) and ``remove``."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import tarfile
import time
from typing import Any

from mltrain.remote.inputs import NodeCache, release_run_folder
from mltrain.remote.node_outputs import DIRECT_DIRS
from mltrain.remote.procs import start_token
from mltrain.remote.ssh_host import (
    EXIT_FILE,
    JOB_FILE,
    PACKED,
    START_ERROR,
    STREAMS,
    answer,
    blob_files,
    docker_out,
    fail,
    inside,
    materialise_run,
    run_dir_of,
    write_atomic,
)
from mltrain.remote.ssh_outputs import DIRECT_MARK

MAX_FD = 1 << 16  # descriptors a forked supervisor closes (all but its standard streams)


def remove_container(run_dir: str) -> bool:
    """Remove the job's container (by the name its request gave) when it has one; True if one was there."""
    try:
        with open(os.path.join(run_dir, ".mltrain", "request.json")) as f:
            container = json.load(f).get("container")
    except (OSError, ValueError):
        return False
    if not container:
        return False
    try:
        return docker_out(container["docker"], "rm", "--force", container["name"]).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def cmd_start(work: str, run_id: str, heartbeat: str | None = None) -> None:
    """Start the supervisor of the job; answer once the job's process group exists. With
    ``heartbeat``, the answer is a 'j' frame and the command goes on as ``follow`` (one round trip).
    A request that makes the run folder (``materialise``) from blobs the cache lacks starts nothing:
    with ``heartbeat`` the answer is a 'b' frame listing them (the driver sends them and asks again)."""
    req = json.loads(sys.stdin.readline())  # one line: stdin stays open for the follow that comes next
    run_dir = run_dir_of(work, run_id)
    missing = materialise_run(work, run_id, blob_files({"files": req["materialise"]})) if req.get("materialise") else []
    if missing and heartbeat is not None:
        frame("b", json.dumps(missing).encode())
        return
    if missing:
        fail("the host's blob cache lacks files of the run (pruned?): upload again", 6)
    if not os.path.isdir(run_dir):
        fail(f"run folder {run_dir} does not exist (upload first)")
    for rel, text in req.get("files", {}).items():
        dest = inside(run_dir, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        write_atomic(dest, text.encode())
    write_atomic(os.path.join(run_dir, ".mltrain", "request.json"), json.dumps(req).encode())
    _fork_supervisor(work, run_id)
    deadline = time.time() + 60
    while time.time() < deadline:
        for name in (JOB_FILE, START_ERROR):
            path = os.path.join(run_dir, name)
            if os.path.exists(path):
                with open(path) as f:
                    text = f.read()
                if name == START_ERROR:
                    fail("the job could not start: " + text, 6)
                started = dict(json.loads(text), run_dir=os.path.realpath(run_dir))
                if heartbeat is None:
                    answer(started)
                    return
                frame("j", json.dumps(started).encode())
                return cmd_follow(work, run_id, "0,0,0", heartbeat, "pack")
        time.sleep(0.02)
    fail("the job did not start within 60 s", 6)


def _fork_supervisor(work: str, run_id: str) -> None:
    """``supervise`` the job in a fork of this helper (no interpreter to start) in a session of its
    own: its standard streams are /dev/null and it keeps no other descriptor of the helper's open."""
    if os.fork():
        return
    code = 1
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, MAX_FD)
        cmd_supervise(work, run_id)
        code = 0
    finally:
        os._exit(code)


def cmd_supervise(work: str, run_id: str) -> None:
    run_dir = run_dir_of(work, run_id)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with open(os.path.join(run_dir, ".mltrain", "request.json")) as f:
        req = json.load(f)
    env = dict(os.environ, **req["env"])
    if req.get("path_prepend"):
        env["PATH"] = req["path_prepend"] + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")
    try:
        with (
            open(os.path.join(run_dir, STREAMS["o"]), "ab") as out,
            open(os.path.join(run_dir, STREAMS["e"]), "ab") as err,
        ):
            proc = subprocess.Popen(
                req["argv"],
                cwd=run_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
    except OSError as exc:
        write_atomic(os.path.join(run_dir, START_ERROR), str(exc).encode())
        return
    job = {"pgid": proc.pid, "start": start_token(proc.pid)}
    write_atomic(os.path.join(run_dir, JOB_FILE), json.dumps(job).encode())
    code = proc.wait()
    write_atomic(os.path.join(run_dir, EXIT_FILE), str(code).encode())


def job_of(run_dir: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(run_dir, JOB_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def group_alive(job: dict[str, Any] | None) -> bool:
    """True while the job's process group exists (and is the job's, not a reused id)."""
    if not job:
        return False
    pgid = int(job["pgid"])
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    token = start_token(pgid)
    return token is None or job.get("start") is None or token == job["start"]


def exit_code(run_dir: str) -> int | None:
    try:
        with open(os.path.join(run_dir, EXIT_FILE)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def cmd_status(work: str, run_id: str) -> None:
    run_dir = run_dir_of(work, run_id)
    job = job_of(run_dir)
    answer({"exists": os.path.isdir(run_dir), "job": job, "running": group_alive(job), "exit": exit_code(run_dir)})


def signal_group(job: dict[str, Any], sig: int) -> bool:
    try:
        os.killpg(int(job["pgid"]), sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def cmd_stop(work: str, run_id: str, grace: str, first: str) -> None:
    """SIGINT (unless first=TERM), SIGTERM, SIGKILL, ``grace`` seconds apart, until the group is gone."""
    run_dir = run_dir_of(work, run_id)
    job = job_of(run_dir)
    if not group_alive(job):
        answer({"stopped": remove_container(run_dir)})  # a container whose CLI was killed
        return
    sigs = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
    sigs = sigs[sigs.index(getattr(signal, "SIG" + first)) :]
    for sig in sigs:
        if not group_alive(job) or not signal_group(job, sig):
            break
        deadline = time.time() + (float(grace) if sig != signal.SIGKILL else 5.0)
        while time.time() < deadline and group_alive(job):
            time.sleep(0.05)
    remove_container(run_dir)  # SIGKILL ends the docker CLI, not its container
    answer({"stopped": True})


def cmd_kill(work: str, run_id: str) -> None:
    run_dir = run_dir_of(work, run_id)
    job = job_of(run_dir)
    killed = group_alive(job) and signal_group(job, signal.SIGKILL)
    answer({"killed": remove_container(run_dir) or killed})


def frame(kind: str, data: bytes) -> None:
    sys.stdout.buffer.write(kind.encode() + struct.pack(">I", len(data)) + data)


def cmd_follow(work: str, run_id: str, offsets: str, heartbeat: str, finish: str = "") -> None:
    """Frames (kind, length, data) of new output ('o', 'e') and metrics ('m') from the given byte
    offsets (-1: from the end), 'h' every ``heartbeat`` seconds, then 'x' with the exit code.
    ``finish=pack``: before 'x', a 'p' frame holds the tar of what ``pack`` sends; after 'x', a line on
    stdin says what to do with the run folder ("remove" or "keep"), answered by an 'r' frame, so a
    whole run needs no other command."""
    run_dir = run_dir_of(work, run_id)
    pos = {}
    for kind, off in zip("oem", offsets.split(",")):  # noqa: B905 - hosts may run Python < 3.10
        path = os.path.join(run_dir, STREAMS[kind])
        pos[kind] = int(off) if int(off) >= 0 else (os.path.getsize(path) if os.path.exists(path) else 0)
    beat = float(heartbeat)
    began = time.time()
    last = 0.0
    dead_since = None
    while True:
        code = exit_code(run_dir)
        gone = not os.path.isdir(run_dir)
        if code is None and not gone and not group_alive(job_of(run_dir)) and job_of(run_dir) is not None:
            dead_since = dead_since or time.time()
            gone = time.time() - dead_since > 2.0  # no exit code from its supervisor: it died too
        for kind in "oem":
            try:
                with open(os.path.join(run_dir, STREAMS[kind]), "rb") as f:
                    f.seek(pos[kind])
                    data = f.read(1 << 20)
            except OSError:
                continue
            if data:
                pos[kind] += len(data)
                frame(kind, data)
        if code is not None or gone:
            break
        if time.time() - last >= beat:
            frame("h", b"")
            last = time.time()
        sys.stdout.flush()
        time.sleep(0.01 if time.time() - began < 10 else 0.05)  # a short job's end is seen at once
    if finish == "pack":
        frame("p", pack_bytes(run_dir))
    frame("x", str(code if code is not None else -1).encode())
    sys.stdout.flush()
    if finish == "pack":
        what = sys.stdin.readline().strip()
        if what == "remove":
            remove_run(work, run_dir)
        frame("r", what.encode())
        sys.stdout.flush()


def remove_run(work: str, run_dir: str) -> None:
    """Remove a run folder; its download inputs the script left untouched stay in the cache as spares."""
    release_run_folder(run_dir, NodeCache(os.path.realpath(work)))


def pack_bytes(run_dir: str) -> bytes:
    """The tar of PACKED sent at a job's end; without outputs/ and logs/ when the host uploads those
    itself (DIRECT_MARK: the driver then asks for what did not go with ``pack``)."""
    buf = io.BytesIO()
    direct = os.path.isfile(os.path.join(run_dir, DIRECT_MARK))
    pack_into(buf, run_dir, [n for n in PACKED if not (direct and n in DIRECT_DIRS)], set())
    return buf.getvalue()


def pack_into(out: Any, run_dir: str, names: list[str], skip: set[str]) -> None:
    """A tar.gz of ``names`` of the run folder into ``out``, without the files whose paths are in ``skip``."""

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if info.name in skip else info

    with tarfile.open(fileobj=out, mode="w|gz") as tar:
        for name in names:
            if os.path.lexists(os.path.join(run_dir, name)):
                tar.add(os.path.join(run_dir, name), arcname=name, filter=keep)


def cmd_pack(work: str, run_id: str, then: str = "", listed: str = "") -> None:
    """A tar of outputs/, logs/, uploads and the metrics file of the run, on stdout; ``then=remove``
    deletes the run folder afterwards (collect and cleanup in one round trip); ``listed=skip``: stdin holds
    {skip: [path, ...]}, files left out (the host uploaded them itself: :mod:`~mltrain.remote.ssh_outputs`)."""
    run_dir = run_dir_of(work, run_id)
    skip = set(json.load(sys.stdin)["skip"]) if listed == "skip" else set()  # files the host uploaded itself
    pack_into(sys.stdout.buffer, run_dir, list(PACKED), skip)
    sys.stdout.flush()
    if then == "remove":
        remove_run(work, run_dir)


def cmd_remove(work: str, run_id: str) -> None:
    run_dir = run_dir_of(work, run_id)
    existed = os.path.isdir(run_dir)
    remove_run(work, run_dir)
    answer({"removed": existed})
