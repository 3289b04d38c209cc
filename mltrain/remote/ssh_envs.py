"""Environments on an SSH host (commands of :mod:`mltrain.remote.ssh_agent`): venvs built by uv
(``venv``), images built in the engine the host's ``docker`` CLI reaches (``image``), and their removal
(``drop``). Builds are serialised per hash by a file lock; build output goes to stderr."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from mltrain.remote.ssh_host import (
    READY,
    answer,
    blob_files,
    docker_cli,
    docker_out,
    fail,
    inside,
    is_blob_name,
    step,
    touch,
)
from mltrain.remote.ssh_index import note_index
from mltrain.remote.ssh_probe import find_uv, has_pip


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


# what uv and pip say when the package index cannot be reached (no route, no DNS, a dead proxy, offline)
UNREACHABLE = (
    "Failed to fetch",
    "error sending request",
    "tcp connect error",
    "Connection refused",
    "dns error",
    "failed to lookup address",
    "Network connectivity is disabled",
    "NewConnectionError",
    "ProxyError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "the network was disabled",
)


class NoIndex(Exception):
    """The package index cannot be reached from this host (its message: the tool's last lines)."""


def fetch_step(cmd: list[str], env: dict[str, str], marks: tuple[str, ...] = UNREACHABLE) -> None:
    """:func:`step` for a command that reaches the package index: NoIndex when it failed for want of it
    (its output has one of ``marks``)."""
    sys.stderr.flush()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    tail: list[str] = []
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode(errors="replace")
        sys.stderr.write(line)
        tail = (tail + [line.rstrip()])[-40:]
    if proc.wait() != 0:
        text = "\n".join(tail)
        if any(mark in text for mark in marks):
            raise NoIndex("\n".join(line for line in tail[-6:] if line.strip()))
        fail(f"{' '.join(cmd[:3])} exited {proc.returncode}", 4)


def new_venv(interpreter: str, folder: str, env: dict[str, str]) -> list[str]:
    """A venv made by ``interpreter`` in ``folder``; the pip command that installs into it: the
    interpreter's own pip when it can install into another environment (pip 22.3+: no copy of pip
    in the venv, seconds faster), else the venv's."""
    probe = "import pip, sys; sys.exit(tuple(map(int, pip.__version__.split('.')[:2])) < (22, 3))"
    if subprocess.run([interpreter, "-c", probe], env=env, capture_output=True).returncode == 0:
        step([interpreter, "-m", "venv", "--without-pip", folder], env)
        return [interpreter, "-m", "pip", "--python", os.path.join(folder, "bin", "python")]
    step([interpreter, "-m", "venv", folder], env)
    return [os.path.join(folder, "bin", "python"), "-m", "pip"]


def install_uv(work: str, env: dict[str, str]) -> str:
    """uv installed with pip into the host's tools folder, with ``env`` (the build's: its proxies, its index)."""
    if not has_pip():
        fail(f"uv is not installed on this host and {sys.executable} has no pip to install it", 5)
    tools = os.path.join(work, "tools", "uv")
    sys.stderr.write(f"installing uv into {tools}\n")
    pip = new_venv(sys.executable, tools, env)
    fetch_step([*pip, "install", "--quiet", "uv"], env, (*UNREACHABLE, "No matching distribution found"))
    return os.path.join(tools, "bin", "uv")


def wheel_links(work: str, root: str, wheels: list[list[Any]]) -> str:
    """A folder of the shipped wheels under their file names, made from the blob cache."""
    links = tempfile.mkdtemp(prefix=".wheels-", dir=root)
    for name, sha, _size, _mode in wheels:
        try:
            os.link(os.path.join(work, "blobs", sha), inside(links, name))
        except OSError:  # another file system
            shutil.copyfile(os.path.join(work, "blobs", sha), inside(links, name))
    return links


def build_venv(work: str, scratch: str, interpreter: str, lock: str, env: dict[str, str], links: str | None) -> None:
    """The venv of ``lock`` in ``scratch``: from the package index, or (``links``) from the shipped
    wheels only, with uv when the host has it, else with the interpreter's venv and pip."""
    lock_file = os.path.join(scratch, "requirements.lock")
    python = os.path.join(scratch, "bin", "python")
    uv = find_uv(work) if links else find_uv(work) or install_uv(work, env)
    if uv is None:
        assert links is not None
        pip = new_venv(interpreter, scratch, env)
        with open(lock_file, "w") as f:
            f.write(lock)
        if lock.strip():
            step([*pip, "install", "--quiet", "--no-index", "--no-deps", "--find-links", links, "-r", lock_file], env)
        return
    step([uv, "venv", "--quiet", "--python", interpreter, scratch], env)
    if lock.strip():
        with open(lock_file, "w") as f:
            f.write(lock)
        offline = ["--offline", "--no-index", "--find-links", links] if links else []
        fetch_step([uv, "pip", "sync", *offline, "--python", python, lock_file], env)


def cmd_venv(work: str) -> None:
    """Build (once; serialised per hash by a file lock) a venv with uv; build output on stderr.
    ``offline``: from the ``wheels`` ([file name, sha256, size, mode] each) of the blob cache, with no
    package index (``missing``: "wheels" to have them listed, else the blobs to send first). A build
    from the index that fails because the index cannot be reached answers ``no_index``."""
    req = json.load(sys.stdin)
    env_hash, version, lock = req["hash"], req["python"], req.get("lock", "")
    root = os.path.join(work, "venvs")
    os.makedirs(root, exist_ok=True)
    target = os.path.join(root, env_hash[:24])
    result = {"location": target, "python": os.path.join(target, "bin", "python")}
    if os.path.exists(os.path.join(target, READY)) and not req.get("rebuild"):
        os.utime(os.path.join(target, READY))
        answer(dict(result, cached=True))
        return
    wheels = req.get("wheels")
    if req.get("offline") and wheels is None:
        answer({"missing": "wheels"})
        return
    if wheels is not None:
        bad = [name for name, sha, _s, _m in wheels if not is_blob_name(sha) or not str(name).endswith(".whl")]
        if bad:
            fail(f"bad wheels {bad!r}")
        blobs = os.path.join(work, "blobs")
        os.makedirs(blobs, exist_ok=True)
        missing = sorted({sha for _n, sha, _s, _m in wheels if not os.path.isfile(os.path.join(blobs, sha))})
        if missing:
            answer({"missing": missing})
            return
    with open(os.path.join(root, "." + env_hash[:24] + ".lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(target, READY)) and not req.get("rebuild"):
            answer(dict(result, cached=True))
            return
        interpreter = find_python(version)
        if interpreter is None:
            fail(f"Python {version} is not installed on this host (looked for python{version}, python3, python)")
        scratch = tempfile.mkdtemp(prefix=".build-", dir=root)
        links = wheel_links(work, root, wheels) if wheels is not None else None
        env = dict(os.environ, **req.get("env", {}))
        env.pop("VIRTUAL_ENV", None)
        try:
            build_venv(work, scratch, interpreter, lock, env, links)
            with open(os.path.join(scratch, READY), "w") as f:
                json.dump({"hash": env_hash, "built_at": time.time()}, f)
            if os.path.exists(target):
                shutil.rmtree(target)
            os.rename(scratch, target)
            if links is None and lock.strip():
                note_index(work, None)  # reached: later builds try the index again
        except NoIndex as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            note_index(work, str(exc))
            answer({"no_index": str(exc)})
            return
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        finally:
            if links is not None:
                shutil.rmtree(links, ignore_errors=True)
    answer(dict(result, cached=False))


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

    rebuild = bool(req.get("rebuild"))  # environment.rebuild: built again, without the build cache
    found = None if rebuild else ready()
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
        found = None if rebuild else ready()
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
            cmd = [docker, "build", "--network", req["network"], "--tag", tag, *(["--no-cache"] if rebuild else [])]
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
