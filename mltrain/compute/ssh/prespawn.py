"""The OpenSSH clients of a command line's SSH hosts, started by ``python -m mltrain`` first of all, before
it imports anything but the standard library (:func:`start`, from :mod:`mltrain.__main__`): 50-100 ms
sooner than :mod:`~mltrain.compute.ssh.early` can, which needs the SSH config's classes first.

What is started is exactly what the early connections of the command line's last run would start:
the ``ssh`` command lines (:func:`~mltrain.compute.ssh.conn.Remote.link_argv`) that
:mod:`mltrain.runs.preconnect` stores with the remembered config. A host's connection takes the client
started with its own command line, argument for argument (:func:`take`), so a changed config, helper,
interpreter or ``ssh`` never runs an old command; what no connection took is closed (:func:`discard`).
A stored command line is untrusted: it runs only in the shape :func:`~mltrain.compute.ssh.openssh.argv`
writes (:func:`~mltrain.compute.ssh.openssh.shaped`: the ``ssh`` on the PATH, only mltrain's own options)
and only from a file of this user's that no one else may write.
"""

from __future__ import annotations

import hashlib
import json
import os

from mltrain.compute.ssh import openssh
from mltrain.environments import cache_json

FILE = "preconnect.json"
_links: list[openssh.Link] = []


def command_key(argv: list[str], cwd: str | None = None) -> str:
    """The key of a command line: its arguments and the folder it runs in (``cwd``, default this one)."""
    return hashlib.sha256(json.dumps([cwd or os.getcwd(), list(argv)]).encode()).hexdigest()[:32]


def load() -> list[dict[str, object]]:
    """The remembered command lines (:mod:`mltrain.runs.preconnect`); none when the file is missing,
    damaged, or another user's or writable by others (:func:`~mltrain.environments.cache_json.load`)."""
    return [e for e in cache_json.load(FILE, list, private=True) if isinstance(e, dict)]


def start(argv: list[str]) -> int:
    """Start the ``ssh`` clients stored for the command line ``argv``; how many started."""
    if openssh.off():
        return 0
    key = command_key(argv)
    links = next((e.get("links") for e in load() if e.get("key") == key), None)
    if not isinstance(links, list) or not links:
        return 0
    ssh = openssh.client()
    for args in links:
        if openssh.shaped(args, ssh):
            try:
                _links.append(openssh.Link(args))
            except OSError:
                continue  # the connection starts the usual way
    return len(_links)


def take(args: list[str]) -> openssh.Link | None:
    """The client :func:`start` started with exactly ``args``, now the caller's; None when there is none."""
    for link in _links:
        if link.proc.args == args:
            _links.remove(link)
            return link
    return None


def discard() -> None:
    """Close the clients no connection took."""
    while _links:
        _links.pop().close()
