"""The real path of each host's interpreter, remembered between runs (``ssh-python.json`` in the
cache folder): the helper then starts without the host's shim on the way (a pyenv shim costs a
shell and a second interpreter lookup at every start). Keyed by host and the configured name
(``compute.hosts[].python``); a remembered path that no longer exists on the host is not used (the
start script checks it), and the next probe remembers the new one.
"""

from __future__ import annotations

from mltrain.environments import cache_json

KEEP = 64
FILE = "ssh-python.json"


def remembered(host: str, python: str) -> str | None:
    """The path ``python`` named on ``host`` (a label such as ``user@host:port``) at its last probe."""
    path = cache_json.load(FILE, dict).get(f"{host} {python}")
    return path if isinstance(path, str) and path.startswith("/") else None


def remember(host: str, python: str, executable: str) -> None:
    """Store ``executable`` as the real path of ``python`` on ``host`` (a cache: failures are ignored)."""
    key = f"{host} {python}"
    data = cache_json.load(FILE, dict)
    if data.get(key) == executable:
        return
    data.pop(key, None)
    data[key] = executable
    cache_json.store(FILE, dict(list(data.items())[-KEEP:]))
