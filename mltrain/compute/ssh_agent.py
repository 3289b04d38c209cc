"""The helper mltrain runs on an SSH host (uploaded as a file; standard library only, Python >= 3.8).

``python3 AGENT WORKDIR COMMAND [ARGS]``; a JSON request comes on stdin where a command needs one,
and the answer is one JSON line on stdout (``follow`` and ``pack`` stream instead). Layout of WORKDIR:
``blobs/<sha256>`` (content-addressed cache of uploaded files), ``runs/<run_id>/`` (run folders),
``venvs/<hash>/`` (environments), ``tools/uv/`` (uv, when the host had none). Docker images of
environments live in the engine the host's ``docker`` CLI reaches (its ``DOCKER_HOST``, context).

A job is started by a supervisor in a session of its own; the job is the leader of its own process
group, writes its output to ``.mltrain/stdout`` and ``.mltrain/stderr`` in its run folder (so it
outlives the connection) and the supervisor records ``.mltrain/job.json`` (pgid, start token) and
``.mltrain/exit_code``. A job in a container is a foreground ``docker run`` in that group (signals
reach the container through it); stopping it also removes the container by name, so a killed CLI
leaves nothing running. Nothing here trusts paths from the request beyond WORKDIR.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from typing import Any, NoReturn

JOB_FILE = ".mltrain/job.json"
EXIT_FILE = ".mltrain/exit_code"
START_ERROR = ".mltrain/start_error"
STREAMS = {"o": ".mltrain/stdout", "e": ".mltrain/stderr", "m": ".mltrain/metrics.jsonl"}
PACKED = ("outputs", "logs", ".mltrain/metrics.jsonl", ".mltrain/uploads")
READY = ".mltrain-ready"


def fail(message: str, code: int = 3) -> NoReturn:
    sys.stderr.write(message + "\n")
    sys.exit(code)


def answer(value: object) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def inside(root: str, rel: str) -> str:
    """``root/rel``, refused when ``rel`` escapes ``root``."""
    full = os.path.realpath(os.path.join(root, rel))
    if os.path.isabs(rel) or not (full == os.path.realpath(root) or full.startswith(os.path.realpath(root) + os.sep)):
        fail(f"path {rel!r} is outside {root}")
    return full


def is_blob_name(sha: object) -> bool:
    """A blob name is a sha256: 64 lowercase hex characters (never a path)."""
    return isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)


def blob_files(req: dict[str, Any]) -> list[list[Any]]:
    """The ``files`` of a request ([path, sha256, size, mode] each), refused when a blob name is not a sha256."""
    for path, sha, _size, _mode in req["files"]:
        if not is_blob_name(sha):
            fail(f"bad blob name {sha!r} of {path!r}")
    return req["files"]  # type: ignore[no-any-return]


def run_dir_of(work: str, run_id: str) -> str:
    if not run_id or "/" in run_id or run_id.startswith("."):
        fail(f"bad run id {run_id!r}")
    return os.path.join(work, "runs", run_id)


def free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def version_of(python: str) -> str | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.decode().strip() if out.returncode == 0 else None


def find_python(version: str) -> str | None:
    for name in ("python" + version, "python3", "python"):
        found = shutil.which(name)
        if found and version_of(found) == version:
            return found
    return None


def find_uv(work: str) -> str | None:
    own = os.path.join(work, "tools", "uv", "bin", "uv")
    return shutil.which("uv") or (own if os.access(own, os.X_OK) else None)


def has_pip() -> bool:
    import importlib.util

    return importlib.util.find_spec("pip") is not None


# -- commands ------------------------------------------------------------------------------------------
def cmd_probe(work: str) -> None:
    os.makedirs(work, exist_ok=True)
    answer(
        {
            "workdir": os.path.realpath(work),
            "python": ".".join(map(str, sys.version_info[:3])),
            "executable": sys.executable,
            "uv": find_uv(work),
            "pip": has_pip(),
            "docker": shutil.which("docker"),
            "free_bytes": free_bytes(work),
            "cpus": os.cpu_count(),
            "uid": os.getuid(),
            "gid": os.getgid(),
            "machine": os.uname().machine,
        }
    )


def cmd_missing(work: str) -> None:
    wanted = json.load(sys.stdin)
    blobs = os.path.join(work, "blobs")
    os.makedirs(blobs, exist_ok=True)
    answer([sha for sha in wanted if not is_blob_name(sha) or not os.path.isfile(os.path.join(blobs, sha))])


def cmd_materialise(work: str, run_id: str) -> None:
    """Make the run folder from cached blobs: files = [[path, sha256, size, mode], ...]."""
    req = json.load(sys.stdin)
    run_dir = run_dir_of(work, run_id)
    blobs = os.path.join(work, "blobs")
    os.makedirs(blobs, exist_ok=True)
    files = blob_files(req)
    missing = sorted({sha for _p, sha, _s, _m in files if not os.path.isfile(os.path.join(blobs, sha))})
    if missing:  # the caller uploads these and asks again
        answer({"missing": missing})
        return
    os.makedirs(os.path.join(run_dir, ".mltrain"), exist_ok=True)
    for path, sha, _size, mode in files:
        dest = inside(run_dir, path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(os.path.join(blobs, sha), dest)
        os.chmod(dest, (int(mode) & 0o755) | 0o200)  # the rule of mltrain.workspace.snapshots.restored_mode
    answer({"run_dir": os.path.realpath(run_dir), "missing": []})


def cmd_venv(work: str) -> None:
    """Build (once; serialised per hash by a file lock) a venv with uv; build output on stderr."""
    req = json.load(sys.stdin)
    env_hash, version, lock = req["hash"], req["python"], req.get("lock", "")
    root = os.path.join(work, "venvs")
    os.makedirs(root, exist_ok=True)
    target = os.path.join(root, env_hash[:24])
    result = {"location": target, "python": os.path.join(target, "bin", "python")}
    if os.path.exists(os.path.join(target, READY)):
        os.utime(os.path.join(target, READY))
        answer(dict(result, cached=True))
        return
    with open(os.path.join(root, "." + env_hash[:24] + ".lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(target, READY)):
            answer(dict(result, cached=True))
            return
        interpreter = find_python(version)
        if interpreter is None:
            fail(f"Python {version} is not installed on this host (looked for python{version}, python3, python)")
        uv = find_uv(work) or install_uv(work)
        scratch = tempfile.mkdtemp(prefix=".build-", dir=root)
        env = dict(os.environ, **req.get("env", {}))
        env.pop("VIRTUAL_ENV", None)
        try:
            step([uv, "venv", "--quiet", "--python", interpreter, scratch], env)
            if lock.strip():
                with open(os.path.join(scratch, "requirements.lock"), "w") as f:
                    f.write(lock)
                step(
                    [
                        uv,
                        "pip",
                        "sync",
                        "--python",
                        os.path.join(scratch, "bin", "python"),
                        os.path.join(scratch, "requirements.lock"),
                    ],
                    env,
                )
            with open(os.path.join(scratch, READY), "w") as f:
                json.dump({"hash": env_hash, "built_at": time.time()}, f)
            if os.path.exists(target):
                shutil.rmtree(target)
            os.rename(scratch, target)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    answer(dict(result, cached=False))


def docker_cli() -> str:
    docker = shutil.which("docker")
    if docker is None:
        fail("docker is not installed on this host (no `docker` on the PATH of its SSH sessions)", 7)
    return docker


def docker_out(docker: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([docker, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=120)


def image_labels(docker: str, tag: str) -> dict[str, str] | None:
    """The labels of image ``tag`` (None when the engine has no such image)."""
    out = docker_out(docker, "image", "inspect", "--format", "{{json .Config.Labels}}", tag)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.decode() or "null") or {}


def cmd_image(work: str) -> None:
    """Build (once per key; serialised by a file lock) the image of an environment in the engine the
    host's docker CLI reaches, from a build context of cached blobs. Request: tag, key, label, base,
    network, build_args and ``files`` (null: only ask), or ``check`` (is the engine reachable?).
    Answers ``cached`` when the image is there,
    ``missing`` blobs (or ``context``) for the caller to send; build output goes to stderr."""
    req = json.load(sys.stdin)
    docker = docker_cli()
    server = docker_out(docker, "version", "--format", "{{.Server.Version}}")
    if server.returncode != 0:
        detail = server.stderr.decode(errors="replace").strip()[-400:]
        where = os.environ.get("DOCKER_HOST") or "its default socket"
        fail(f"the Docker engine of this host cannot be reached by {docker} (DOCKER_HOST: {where}): {detail}", 8)
    if req.get("check"):
        answer({"docker": docker, "server": server.stdout.decode().strip()})
        return
    tag, key = req["tag"], req["key"]

    def ready() -> dict[str, Any] | None:
        if (image_labels(docker, tag) or {}).get(req["label"]) != key:
            return None
        touch(os.path.join(work, "images", key[:24] + ".used"))  # its last use here (``drop``)
        size = docker_out(docker, "image", "inspect", "--format", "{{.Size}}", tag).stdout.decode().strip()
        return {"tag": tag, "cached": True, "size": int(size) if size.isdigit() else None}

    found = ready()
    if found is not None:
        answer(found)
        return
    if req.get("files") is None:
        answer({"missing": "context"})
        return
    blobs = os.path.join(work, "blobs")
    os.makedirs(blobs, exist_ok=True)
    missing = sorted({sha for _p, sha, _s, _m in blob_files(req) if not os.path.isfile(os.path.join(blobs, sha))})
    if missing:
        answer({"missing": missing})
        return
    root = os.path.join(work, "images")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "." + key[:24] + ".lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        found = ready()
        if found is not None:
            sys.stderr.write(f"image {tag} was built by another process; reusing it\n")
            answer(found)
            return
        if image_labels(docker, req["base"]) is None:  # not in the engine: pulled, as a build would
            sys.stderr.write(f"base image {req['base']} is not in the Docker engine of this host; pulling it\n")
            pulled = subprocess.run([docker, "pull", req["base"]], stdin=subprocess.DEVNULL, capture_output=True)
            if pulled.returncode != 0:
                detail = pulled.stderr.decode(errors="replace").strip()[-400:]
                fail(
                    f"base image {req['base']} is not in the Docker engine of this host and cannot be pulled: {detail}",
                    9,
                )
        context = tempfile.mkdtemp(prefix=".context-", dir=root)
        try:
            for path, sha, _size, mode in req["files"]:
                dest = inside(context, path)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copyfile(os.path.join(blobs, sha), dest)
                os.chmod(dest, int(mode) & 0o777)
            cmd = [docker, "build", "--network", req["network"], "--tag", tag]
            for name in req.get("build_args", {}):
                cmd += ["--build-arg", name]  # the value comes from the environment, not the command line
            env = dict(os.environ, **req.get("build_args", {}))
            env.setdefault("DOCKER_BUILDKIT", "0")  # the classic builder: plain step output, no buildx needed
            step([*cmd, context], env)
        finally:
            shutil.rmtree(context, ignore_errors=True)
        built = ready()
        if built is None:
            fail(f"the build ended without tagging {tag}", 4)
    answer(dict(built, cached=False))


def touch(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a"):
        os.utime(path)


def cmd_drop(work: str, kind: str, name: str, older_than: str) -> None:
    """Delete an environment of this host (``mltrain envs prune``) unless it is being built or was
    used here since ``older_than`` (epoch seconds): ``venv`` NAME is its folder under venvs/,
    ``docker`` NAME its image tag. Answers removed and a note."""
    cutoff = float(older_than)
    if kind == "venv":
        root = os.path.join(work, "venvs")
        target = inside(root, name)
        if not os.path.isdir(target):
            answer({"removed": False, "note": "already gone"})
            return
        with open(os.path.join(root, "." + os.path.basename(target) + ".lock"), "w") as lk:
            try:
                fcntl.flock(lk, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                answer({"removed": False, "note": "being built on the host; kept"})
                return
            ready = os.path.join(target, READY)
            if os.path.exists(ready) and os.stat(ready).st_mtime >= cutoff:
                answer({"removed": False, "note": "used since on the host; kept"})
                return
            trash = tempfile.mkdtemp(prefix=".trash-", dir=root)
            os.rename(target, os.path.join(trash, "venv"))
            shutil.rmtree(trash, ignore_errors=True)
        answer({"removed": True, "note": "removed from the host"})
    elif kind == "docker":
        docker = docker_cli()
        used = os.path.join(work, "images", name.rpartition(":")[2][:24] + ".used")
        if os.path.exists(used) and os.stat(used).st_mtime >= cutoff:
            answer({"removed": False, "note": "used since on the host; kept"})
            return
        out = docker_out(docker, "image", "rm", name)
        err = out.stderr.decode(errors="replace").strip()
        if out.returncode == 0:
            answer({"removed": True, "note": "image removed from the host's engine"})
        elif "no such image" in err.lower():
            answer({"removed": False, "note": "already gone"})
        else:
            answer({"removed": False, "note": f"not removed: {err[-300:]}"})
    else:
        fail(f"no environments of kind {kind!r} live on hosts")


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


def step(cmd: list[str], env: dict[str, str]) -> None:
    sys.stderr.flush()
    code = subprocess.run(cmd, env=env, stdout=sys.stderr, stderr=sys.stderr).returncode
    if code != 0:
        fail(f"{' '.join(cmd[:3])} exited {code}", 4)


def install_uv(work: str) -> str:
    if not has_pip():
        fail(f"uv is not installed on this host and {sys.executable} has no pip to install it", 5)
    tools = os.path.join(work, "tools", "uv")
    sys.stderr.write(f"installing uv into {tools}\n")
    step([sys.executable, "-m", "venv", tools], dict(os.environ))
    step([os.path.join(tools, "bin", "python"), "-m", "pip", "install", "--quiet", "uv"], dict(os.environ))
    return os.path.join(tools, "bin", "uv")


def start_token(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def cmd_start(work: str, run_id: str, heartbeat: str | None = None) -> None:
    """Start the supervisor of the job; answer once the job's process group exists. With
    ``heartbeat``, the answer is a 'j' frame and the command goes on as ``follow`` (one round trip)."""
    req = json.loads(sys.stdin.readline())  # one line: stdin stays open for the follow that comes next
    run_dir = run_dir_of(work, run_id)
    if not os.path.isdir(run_dir):
        fail(f"run folder {run_dir} does not exist (upload first)")
    for rel, text in req.get("files", {}).items():
        dest = inside(run_dir, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        write_atomic(dest, text.encode())
    write_atomic(os.path.join(run_dir, ".mltrain", "request.json"), json.dumps(req).encode())
    subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), work, "supervise", run_id],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
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
        time.sleep(0.05)
    if finish == "pack":
        frame("p", pack_bytes(run_dir))
    frame("x", str(code if code is not None else -1).encode())
    sys.stdout.flush()
    if finish == "pack":
        what = sys.stdin.readline().strip()
        if what == "remove":
            shutil.rmtree(run_dir, ignore_errors=True)
        frame("r", what.encode())
        sys.stdout.flush()


def pack_bytes(run_dir: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in PACKED:
            if os.path.lexists(os.path.join(run_dir, name)):
                tar.add(os.path.join(run_dir, name), arcname=name)
    return buf.getvalue()


def cmd_pack(work: str, run_id: str, then: str = "") -> None:
    """A tar of outputs/, logs/, uploads and the metrics file of the run, on stdout; ``then=remove``
    deletes the run folder afterwards (collect and cleanup in one round trip)."""
    run_dir = run_dir_of(work, run_id)
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|gz") as tar:
        for name in PACKED:
            if os.path.lexists(os.path.join(run_dir, name)):
                tar.add(os.path.join(run_dir, name), arcname=name)
    sys.stdout.flush()
    if then == "remove":
        shutil.rmtree(run_dir, ignore_errors=True)


def cmd_remove(work: str, run_id: str) -> None:
    run_dir = run_dir_of(work, run_id)
    existed = os.path.isdir(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    answer({"removed": existed})


def cmd_sha(work: str, path: str) -> None:
    """sha256 of a file under WORKDIR (tests and audits)."""
    with open(inside(work, path), "rb") as f:
        answer(hashlib.sha256(f.read()).hexdigest())


COMMANDS = {
    "probe": cmd_probe,
    "missing": cmd_missing,
    "materialise": cmd_materialise,
    "venv": cmd_venv,
    "image": cmd_image,
    "drop": cmd_drop,
    "start": cmd_start,
    "supervise": cmd_supervise,
    "status": cmd_status,
    "stop": cmd_stop,
    "kill": cmd_kill,
    "follow": cmd_follow,
    "pack": cmd_pack,
    "remove": cmd_remove,
    "sha": cmd_sha,
}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in COMMANDS:
        fail("usage: agent.py WORKDIR {{{}}} ...".format(",".join(COMMANDS)), 2)
    work = os.path.expanduser(argv[0])
    COMMANDS[argv[1]](work, *argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
