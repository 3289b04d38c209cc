"""A run's outputs uploaded by the node it ran on straight into an object-store artifact root (standard
library only): an SSH host (:mod:`~mltrain.remote.ssh_outputs`, a signed PUT URL per file) and a Ray
node (:mod:`~mltrain.remote.ray_job`, a presigned POST policy handed over with the job, as the files'
hashes are not known then). The driver has the store check each upload's hash before it becomes a
blob, so nothing said here is trusted; a file that could not go comes back through the driver."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from typing import Any

DIRECT_DIRS = ("outputs", "logs")  # what the node uploads itself


def regular(path: str) -> os.stat_result | None:
    """``path``'s status when it is a regular file (no link followed), else None."""
    st = os.lstat(path)
    return st if stat.S_ISREG(st.st_mode) else None


def output_files(run_dir: str) -> list[list[Any]]:
    """[path, sha256, size] of every regular file under DIRECT_DIRS (no link followed)."""
    found: list[list[Any]] = []
    for top in DIRECT_DIRS:
        base = os.path.join(run_dir, top)
        if not os.path.isdir(base) or os.path.islink(base):
            continue
        for root, dirs, names in os.walk(base):
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
            for name in names:
                full = os.path.join(root, name)
                if regular(full) is None:
                    continue
                h = hashlib.sha256()
                size = 0
                with open(full, "rb") as f:
                    for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                        h.update(chunk)
                        size += len(chunk)
                found.append([os.path.relpath(full, run_dir).replace(os.sep, "/"), h.hexdigest(), size])
    return found


def _send(request: Any, timeout: float) -> str | None:
    """None when the store took ``request``, else why not (its HTTP status, or the connection's error)."""
    import urllib.error
    import urllib.request  # here: ssl and http.client are costly imports

    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - a signed URL
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except OSError as exc:
        return str(getattr(exc, "reason", None) or exc) or type(exc).__name__


def put_file(path: str, url: str, headers: dict[str, str], timeout: float = 60.0) -> bool:
    """Upload the file ``path`` (no link followed) by the signed PUT ``url``; whether the store took it."""
    import urllib.request

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        sized = dict(headers, **{"Content-Length": str(os.fstat(f.fileno()).st_size)})
        return _send(urllib.request.Request(url, data=f, method="PUT", headers=sized), timeout) is None


def _form(f: Any, head: bytes, tail: bytes) -> Iterator[bytes]:
    yield head
    while chunk := f.read(1 << 20):
        yield chunk
    yield tail


def post_file(path: str, url: str, fields: dict[str, str], key: str, timeout: float = 60.0) -> str | None:
    """Upload the file ``path`` (no link followed) as object ``key`` by the presigned POST policy ``url``
    and ``fields``, streamed as multipart/form-data: None when the store took it, else why not."""
    import urllib.request

    boundary = "mltrain-" + os.urandom(16).hex()
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\n{key}\r\n')
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="blob"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    head, tail = "".join(parts).encode(), f"\r\n--{boundary}--\r\n".encode()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + os.fstat(f.fileno()).st_size + len(tail)),
        }
        request = urllib.request.Request(url, data=_form(f, head, tail), method="POST", headers=headers)
        return _send(request, timeout)


def post_outputs(
    run_dir: str, policy: dict[str, Any], max_bytes: float, say: Callable[[str], None] = lambda _line: None
) -> list[list[Any]]:
    """Upload the run's outputs/ and logs/ by ``policy`` ({url, fields, key}: :meth:`signed_post`'s, file N
    as key ``key + N``): [path, sha256, size, N] of each file the store took; the files it did not take
    (they come through the driver) are said, with why. Nothing when they add up to more than
    ``max_bytes`` (then they are too large to come back at all)."""
    files = output_files(run_dir)
    if sum(size for _p, _s, size in files) > max_bytes:
        return []
    url, fields, prefix = str(policy["url"]), {str(k): str(v) for k, v in policy["fields"].items()}, str(policy["key"])
    sent, refused = [], []
    for n, (rel, sha, size) in enumerate(files):
        try:
            why = post_file(os.path.join(run_dir, rel), url, fields, f"{prefix}{n}")
        except OSError as exc:
            why = str(exc)
        if why is None:
            sent.append([rel, sha, size, n])
        else:
            refused.append(f"{rel}: {why}")
    if refused:
        say(
            f"outputs: the artifact root did not take {len(refused)} of {len(files)} files this node uploaded "
            f"({refused[0]}): they come through the driver"
        )
    return sent
