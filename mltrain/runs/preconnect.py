"""SSH hosts connected while a run's config is still being composed.

A single ``python -m mltrain`` run composes its config in a forked child (:mod:`mltrain.config.prefork`),
and only then are its SSH hosts known; connecting, the handshake and starting the helper on a host
take about as long again. So the driver remembers the SSH compute config each command line (in its
folder) composed to, for the last :data:`KEEP` command lines, in ``preconnect.json`` of the cache
folder; the next run of the same command line starts connecting to those hosts at once
(:mod:`mltrain.compute.ssh.early`), and its target adopts the connections only when the composed
config is the same (else they are closed unused). Nothing else is stored: a host key is never
accepted by an early connection.
"""

from __future__ import annotations

from typing import Any

from mltrain.compute.ssh.prespawn import FILE, command_key, load
from mltrain.environments import cache_json

KEEP = 16
SSH_TARGET = "mltrain.compute.ssh.SSHCompute"
_command: str | None = None  # this process's command line (its key), set by start()
_begun = False


def start(argv: list[str]) -> bool:
    """Connect to the SSH hosts this command line ran on last time, in the background; True when it
    does."""
    global _command, _begun
    _command = command_key(argv)
    node = next((e.get("compute") for e in load() if e.get("key") == _command), None)
    if isinstance(node, dict) and node.get("_target_") == SSH_TARGET:
        from mltrain.compute.ssh import early

        _begun = early.begin(node)
    return _begun


def begun() -> bool:
    """Whether :func:`start` is connecting to this command line's hosts in the background."""
    return _begun


def remember(compute: Any) -> None:
    """Store the composed ``compute`` config of this process's command line (an SSH target's only;
    any other forgets what was stored for it)."""
    if _command is None:
        return
    entries = load()
    mine = [e for e in entries if e.get("key") == _command]
    ssh = isinstance(compute, dict) and compute.get("_target_") == SSH_TARGET
    entry = {"key": _command, "compute": compute, "links": _links(compute)} if ssh else None
    if (mine and mine[0] == entry) or (not mine and not ssh):
        return  # nothing changes
    entries = [e for e in entries if e.get("key") != _command]
    if entry is not None:
        entries.insert(0, entry)
    cache_json.store(FILE, entries[:KEEP])  # a cache only: without it the next run connects after composing


def _links(compute: dict[str, Any]) -> list[list[str]]:
    """The ``ssh`` command lines of ``compute``'s early connections (the entry point starts them)."""
    from mltrain.compute.ssh import early

    return early.link_commands(compute)


def end() -> None:
    """Close the early connections no run adopted."""
    if _begun:
        from mltrain.compute.ssh import early

        early.discard()
