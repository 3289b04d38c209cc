"""A run's outputs written by an SSH host straight into an object-store artifact root (commands of
:mod:`mltrain.remote.ssh_agent`): ``outputs`` lists the regular files under outputs/ and logs/ with
their sha256 and size (links and anything else are left out), ``put-outputs`` uploads the files the
driver gives signed PUT URLs for (request {files: [[path, url, headers], ...]}) and answers those
that went. The driver has the store check each upload's hash before it becomes a blob, so nothing
said here is trusted; a file that could not go comes back in the ``pack`` archive."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys

from mltrain.remote.ssh_host import answer, run_dir_of

DIRECT_DIRS = ("outputs", "logs")  # what the host uploads itself when its run folder has DIRECT_MARK
DIRECT_MARK = ".mltrain/direct-outputs"


def _regular(path: str) -> os.stat_result | None:
    st = os.lstat(path)
    return st if stat.S_ISREG(st.st_mode) else None


def output_files(run_dir: str) -> list[list[object]]:
    """[path, sha256, size] of every regular file under DIRECT_DIRS (no link followed)."""
    found: list[list[object]] = []
    for top in DIRECT_DIRS:
        base = os.path.join(run_dir, top)
        if not os.path.isdir(base) or os.path.islink(base):
            continue
        for root, dirs, names in os.walk(base):
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
            for name in names:
                full = os.path.join(root, name)
                if _regular(full) is None:
                    continue
                h = hashlib.sha256()
                size = 0
                with open(full, "rb") as f:
                    for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                        h.update(chunk)
                        size += len(chunk)
                found.append([os.path.relpath(full, run_dir).replace(os.sep, "/"), h.hexdigest(), size])
    return found


def cmd_outputs(work: str, run_id: str) -> None:
    answer(output_files(run_dir_of(work, run_id)))


def _upload(path: str, url: str, headers: dict[str, str], timeout: float = 60.0) -> bool:
    import urllib.request  # here: ssl and http.client are costly imports

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        sized = dict(headers, **{"Content-Length": str(os.fstat(f.fileno()).st_size)})
        request = urllib.request.Request(url, data=f, method="PUT", headers=sized)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - a signed URL
                return 200 <= response.status < 300
        except OSError:
            return False


def cmd_put_outputs(work: str, run_id: str) -> None:
    req = json.load(sys.stdin)
    run_dir = os.path.realpath(run_dir_of(work, run_id))
    uploaded = []
    for rel, url, headers in req["files"]:
        full = os.path.join(run_dir, rel)
        if os.path.isabs(rel) or ".." in rel.split("/") or rel.split("/")[0] not in DIRECT_DIRS:
            continue
        if os.path.realpath(full) != os.path.normpath(full):
            continue  # a link on the way
        try:
            if _regular(full) is not None and _upload(full, str(url), {str(k): str(v) for k, v in headers.items()}):
                uploaded.append(rel)
        except OSError:
            continue
    answer({"uploaded": uploaded})
