"""Helpers shared by test modules (import them from here, not from conftest: every test folder has a
conftest of its own)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def pid_alive(pid: int) -> bool:
    """``pid`` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_dead(pid: int, timeout: float = 20) -> bool:
    """Whether ``pid`` stopped running within ``timeout`` s (a wait, not an assertion on time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def readme_block(lang: str, start: str) -> str:
    """The README's ```LANG code block whose text starts with ``start``."""
    import re

    found = re.search(rf"```{lang}\n({re.escape(start)}.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert found, f"no {lang} block starting with {start!r} in the README"
    return found.group(1)


def readme_compute_target(project: Path) -> None:
    """The README's compute target of a user's own: ``mycompute.py`` and ``conf/compute/mine.yaml`` in ``project``."""
    (project / "mycompute.py").write_text(readme_block("python", "# mycompute.py:"))
    (project / "conf" / "compute").mkdir(parents=True, exist_ok=True)
    (project / "conf" / "compute" / "mine.yaml").write_text(readme_block("yaml", "# conf/compute/mine.yaml"))


def write_script(folder: Path, name: str, body: str) -> Path:
    """Write a job script into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body)
    return path


def start_mltrain(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``python -m mltrain ARGS`` in ``cwd`` (output captured as text), without waiting."""
    return subprocess.Popen(
        [sys.executable, "-m", "mltrain", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_all_ok(procs: list[subprocess.Popen[str]], timeout: float = 600) -> None:
    """Wait for every process; each must exit 0."""
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, out + err


@dataclass
class Result:
    """What a command printed and returned."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    chunked: bool = False,
) -> Response:
    """One HTTP request on a fresh connection to ``url`` (http://127.0.0.1:PORT)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        if chunked:
            conn.request(method, path, body=iter([body or b""]), headers=headers or {}, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def score(uri: str, payload: Any, key: str | None = None, raw: bytes | None = None) -> Response:
    """POST ``payload`` (JSON, or the bytes ``raw``) to an endpoint's ``/score``, with ``key`` as its bearer token."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    body = raw if raw is not None else json.dumps(payload).encode()
    return request(uri, "POST", "/score", body, headers)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on ``host:port`` (it can be bound now)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def run_notebook(cells: list[str], cwd: Path, timeout: float = 900) -> list[str]:
    """Execute ``cells`` as a real notebook in a Jupyter kernel (nbclient, ipykernel's ``python3``: this
    interpreter) whose working folder is ``cwd``; each cell's output as text (streams and results).
    A cell that raises fails the call with the kernel's traceback."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    texts = []
    for cell in nb.cells:
        parts = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "data" in out:
                parts.append(out["data"].get("text/plain", ""))
        texts.append("".join(parts))
    return texts


UNREACHED_INDEX = "http://127.0.0.1:9/simple"  # nothing listens there: an index reached only through a proxy


def hand_wheel(name: str, version: str, extra: dict[str, str] | None = None) -> bytes:
    """A pure-Python wheel of module ``name`` (``__version__ = version``) and the ``extra`` files (path in
    the wheel: text; e.g. ``NAME-VERSION.data/scripts/tool``), made by hand."""
    import base64
    import hashlib
    import io
    import zipfile

    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"__version__ = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        **(extra or {}),
    }
    out = io.BytesIO()
    record = []
    with zipfile.ZipFile(out, "w") as zf:
        for path, text in files.items():
            data = text.encode()
            entry = zipfile.ZipInfo(path)
            entry.external_attr = (0o100755 if "/scripts/" in path else 0o100644) << 16  # scripts are executable
            zf.writestr(entry, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        zf.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return out.getvalue()


@dataclass
class ProxiedIndex:
    """A forward HTTP proxy on 127.0.0.1 behind which, whatever host a request names, is a package index
    of hand-made wheels: an index URL such as :data:`UNREACHED_INDEX` is reached only through it."""

    port: int
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # (method, URL, proxy user) of each request

    def url(self, user: str = "", password: str = "") -> str:
        """The proxy's URL (with ``user:password`` when given)."""
        auth = f"{user}:{password}@" if user else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def fetched(self, what: str) -> list[str]:
        """The proxy users of the requests whose URL has ``what``."""
        return [user for _, url, user in self.seen if what in url]


@contextmanager
def proxied_index(packages: dict[str, str], extra: dict[str, dict[str, str]] | None = None) -> Iterator[ProxiedIndex]:
    """A :class:`ProxiedIndex` of ``packages`` (module name: version; one hand-made wheel each, with the
    ``extra`` files of its name) while the block runs. Requests that do not come as a proxy's (absolute
    URLs) and CONNECTs are refused."""
    import base64
    import http.server
    import threading
    from urllib.parse import urlsplit

    files = {name: f"{name}-{version}-py3-none-any.whl" for name, version in packages.items()}
    wheels = {files[n]: hand_wheel(n, v, (extra or {}).get(n)) for n, v in packages.items()}
    pages = {f"/simple/{n.replace('_', '-')}/": f'<a href="/files/{f}">{f}</a>'.encode() for n, f in files.items()}
    index = ProxiedIndex(0)

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's names
            auth = self.headers.get("Proxy-Authorization", "")
            user = base64.b64decode(auth.split()[-1]).decode().split(":")[0] if auth else ""
            index.seen.append((self.command, self.path, user))
            parts = urlsplit(self.path)
            path = parts.path.rstrip("/") + "/" if parts.path.startswith("/simple") else parts.path
            body = pages.get(path) or wheels.get(path.removeprefix("/files/"))
            if not parts.scheme:
                body = None  # asked directly, not as a proxy
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html" if path in pages else "application/octet-stream")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body or b"")

        do_HEAD = do_GET

        def do_CONNECT(self) -> None:  # noqa: N802
            index.seen.append((self.command, self.path, ""))
            self.send_response(403)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    index.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield index
    finally:
        server.shutdown()
        server.server_close()
