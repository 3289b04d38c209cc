"""What the commands of mltrain's SSH helper (:mod:`mltrain.remote.ssh_agent`) share: the files of a
run folder, answers and failures, and paths from a request checked to stay inside WORKDIR."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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


def step(cmd: list[str], env: dict[str, str]) -> None:
    sys.stderr.flush()
    code = subprocess.run(cmd, env=env, stdout=sys.stderr, stderr=sys.stderr).returncode
    if code != 0:
        fail(f"{' '.join(cmd[:3])} exited {code}", 4)


def touch(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a"):
        os.utime(path)


def docker_cli() -> str:
    docker = shutil.which("docker")
    if docker is None:
        fail("docker is not installed on this host (no `docker` on the PATH of its SSH sessions)", 7)
    return docker


def docker_out(docker: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([docker, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=120)


def materialise_run(work: str, run_id: str, files: list[list[Any]]) -> list[str]:
    """Make the run folder from cached blobs (``files``: [path, sha256, size, mode] each); the blobs
    the cache lacks (nothing is made then)."""
    return lay_out(run_dir_of(work, run_id), os.path.join(work, "blobs"), files)


def lay_out(run_dir: str, blobs: str, files: list[list[Any]]) -> list[str]:
    """Copy the blobs of ``files`` ([path, sha256, size, mode] each) from the folder ``blobs`` into ``run_dir``
    (an SSH host's run folder, a Ray node's); the blobs the folder lacks (nothing is made then)."""
    os.makedirs(blobs, exist_ok=True)
    missing = sorted({sha for _p, sha, _s, _m in files if not os.path.isfile(os.path.join(blobs, sha))})
    if missing:
        return missing
    os.makedirs(os.path.join(run_dir, ".mltrain"), exist_ok=True)
    for path, sha, _size, mode in files:
        dest = inside(run_dir, path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(os.path.join(blobs, sha), dest)
        os.chmod(dest, (int(mode) & 0o755) | 0o200)  # the rule of mltrain.workspace.snapshots.restored_mode
    return []
