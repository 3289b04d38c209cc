"""The real path of each host's interpreter, remembered between runs (``ssh-python.json`` in the
cache folder): the helper then starts without the host's shim on the way (a pyenv shim costs a
shell and a second interpreter lookup at every start). Keyed by host and the configured name
(``compute.hosts[].python``); a remembered path that no longer exists on the host is not used (the
start script checks it), and the next probe remembers the new one.
"""

from __future__ import annotations

import json
import os
from typing import Any

from mltrain.environments.cache import cache_root

KEEP = 64
FILE = "ssh-python.json"


def _load() -> dict[str, Any]:
    try:
        data = json.loads((cache_root() / FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remembered(host: str, python: str) -> str | None:
    """The path ``python`` named on ``host`` (a label such as ``user@host:port``) at its last probe."""
    path = _load().get(f"{host} {python}")
    return path if isinstance(path, str) and path.startswith("/") else None


def remember(host: str, python: str, executable: str) -> None:
    """Store ``executable`` as the real path of ``python`` on ``host`` (a cache: failures are ignored)."""
    key = f"{host} {python}"
    data = _load()
    if data.get(key) == executable:
        return
    data.pop(key, None)
    data[key] = executable
    path = cache_root() / FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{FILE}-{os.getpid()}")
        tmp.write_text(json.dumps(dict(list(data.items())[-KEEP:])))
        os.replace(tmp, path)
    except OSError:
        pass
