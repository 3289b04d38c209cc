"""Whether an SSH host reaches the package index (commands of :mod:`mltrain.remote.ssh_agent`).

A build that finds the index unreachable leaves a note in WORKDIR (``no-index.json``): the probe
reports it with its age, and for ``compute.offline_memory_s`` (an hour by default; the driver decides)
later commands build from wheels the driver ships without trying the index again. ``index`` checks it
now (``mltrain compute check``), bounded in time, with the variables a build of the environment gets
added to the host's (request ``env``: ``PIP_*``, ``UV_*`` and the proxies of ``environment.env_vars``,
as ``venv`` takes them): one request to the index that environment names (``UV_DEFAULT_INDEX``,
``UV_INDEX_URL``, ``PIP_INDEX_URL``) through its proxies (the answer names the one it went through),
else the host's own installer (its uv, else pip) asked about a package, with the index and proxies it
is configured with; an index it reaches clears the note (one it does not is left to the next build to
find: a check alone never sends builds offline).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from mltrain.remote.ssh_host import answer, write_atomic

NO_INDEX_NOTE = "no-index.json"  # in WORKDIR: when a build here last found the package index unreachable
CHECK_S = 5.0  # longest wait of ``index`` for the index to answer
ASKED_ABOUT = "pip"  # the package the host's installer looks up when no index is named


def no_index_note(work: str) -> dict[str, Any] | None:
    """What this host found when it last could not reach the package index (until a build or check
    reaches it): ``said`` (the last line of the error), ``age_s`` (by this host's clock)."""
    try:
        with open(os.path.join(work, NO_INDEX_NOTE)) as f:
            note = json.load(f)
        age = time.time() - float(note["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not age >= 0:
        return None  # from the future: this host's clock was set back
    return {"said": str(note.get("said", "")), "age_s": age}


def note_index(work: str, unreachable: str | None) -> None:
    """Record that the package index is ``unreachable`` from here (what was said; None: reached)."""
    path = os.path.join(work, NO_INDEX_NOTE)
    if unreachable is None:
        if os.path.exists(path):
            os.unlink(path)
        return
    said = (unreachable.strip().splitlines() or ["no detail"])[-1]
    write_atomic(path, json.dumps({"at": time.time(), "said": said}).encode())


def index_url() -> str | None:
    """The index this host's environment names for uv (else pip); None when it names none."""
    for name in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        value = os.environ.get(name, "").strip()
        if value:
            return value.split()[0]
    return None


def ask_installer(
    uv: str | None, timeout: float = CHECK_S, python: str = sys.executable
) -> tuple[str, bool | None, str | None]:
    """Look :data:`ASKED_ABOUT` up with the host's own installer (its uv, else pip), as a build would:
    (what was asked, reached (None: no installer could tell), why not)."""
    import subprocess

    if uv:
        what = "the index uv is configured with"
        argv = [uv, "pip", "compile", "-", "--refresh", "--no-header", "--quiet", "--python", python]
    else:
        what = "the index pip is configured with"
        argv = [python, "-m", "pip", "index", "versions", ASKED_ABOUT, "--retries", "0"]
        argv += ["--timeout", f"{timeout:g}", "--no-cache-dir", "--disable-pip-version-check"]
    env = {**os.environ, "UV_HTTP_TIMEOUT": f"{timeout:g}", "UV_HTTP_RETRIES": "0"}
    try:
        done = subprocess.run(
            argv, input=f"{ASKED_ABOUT}\n".encode(), capture_output=True, timeout=3 * timeout, env=env
        )
    except subprocess.TimeoutExpired:
        return what, False, f"no answer within {3 * timeout:.0f} s"
    except OSError as exc:
        return what, None, str(exc)
    said = (done.stderr.decode(errors="replace").strip().splitlines() or [f"exit {done.returncode}"])[-1]
    if done.returncode == 0:
        return what, True, None
    if not uv and ("No module named pip" in said or "unknown command" in said):
        return what, None, said  # no pip (or one without `pip index`) to ask
    return what, False, said


def proxy_for(url: str) -> str | None:
    """The proxy this process's environment sends a request for ``url`` through (None: it goes direct)."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if urllib.request.proxy_bypass_environment(parts.hostname or ""):
        return None
    return urllib.request.getproxies_environment().get(parts.scheme) or None


def reach(url: str, timeout: float = CHECK_S) -> str | None:
    """None when ``url`` answers (any HTTP status) within ``timeout`` seconds, else why not."""
    import urllib.error
    import urllib.request

    found: list[str | None] = []

    def ask() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            found.append(None)
        except urllib.error.HTTPError:
            found.append(None)  # the server answered
        except Exception as exc:  # noqa: BLE001 - every failure to connect is the answer
            found.append(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}")

    worker = threading.Thread(target=ask, daemon=True)  # (name resolution ignores the socket timeout)
    worker.start()
    worker.join(timeout + 1)
    return found[0] if found else f"no answer within {timeout:.0f} s"


def cmd_index(work: str, uv: str | None) -> None:
    """Does this host reach its package index now, with the request's ``env`` added to its environment
    (as a build's)? Answers url (or what was asked), the proxy it went through (if any), reachable (None:
    nothing could tell) and (if not) said."""
    req = json.loads(sys.stdin.read() or "{}")
    os.environ.update({str(k): str(v) for k, v in (req.get("env") or {}).items()})  # (this command's process only)
    url = index_url()
    proxy = None
    if url is not None:
        proxy = proxy_for(url)
        said = reach(url)
        reached: bool | None = said is None
    else:
        url, reached, said = ask_installer(uv)
    if reached:
        note_index(work, None)  # reached: the next build tries it again
    found = {"url": url, **({"proxy": proxy} if proxy else {}), "reachable": reached}
    answer({**found, **({"said": said} if said else {})})
