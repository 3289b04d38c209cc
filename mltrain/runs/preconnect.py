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

import hashlib
import json
import os
from typing import Any

from mltrain.environments import cache_json

FILE = "preconnect.json"
KEEP = 16
SSH_TARGET = "mltrain.compute.ssh.SSHCompute"
_command: str | None = None  # this process's command line (its key), set by start()
_begun = False


def command_key(argv: list[str]) -> str:
    """The key of a command line: its arguments and the folder it runs in."""
    return hashlib.sha256(json.dumps([os.getcwd(), list(argv)]).encode()).hexdigest()[:32]


def _load() -> list[dict[str, Any]]:
    return [e for e in cache_json.load(FILE, list) if isinstance(e, dict)]


def start(argv: list[str]) -> bool:
    """Connect to the SSH hosts this command line ran on last time, in the background; True when it
    does."""
    global _command, _begun
    _command = command_key(argv)
    node = next((e.get("compute") for e in _load() if e.get("key") == _command), None)
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
    entries = _load()
    mine = [e for e in entries if e.get("key") == _command]
    ssh = isinstance(compute, dict) and compute.get("_target_") == SSH_TARGET
    if (mine and ssh and mine[0].get("compute") == compute) or (not mine and not ssh):
        return  # nothing changes
    entries = [e for e in entries if e.get("key") != _command]
    if ssh:
        entries.insert(0, {"key": _command, "compute": compute})
    cache_json.store(FILE, entries[:KEEP])  # a cache only: without it the next run connects after composing


def end() -> None:
    """Close the early connections no run adopted."""
    if _begun:
        from mltrain.compute.ssh import early

        early.discard()
