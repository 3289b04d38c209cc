"""Connections to a run's SSH hosts made before its target exists: started from a remembered config
(:mod:`mltrain.runs.preconnect`) while the run's own config is still being composed, and adopted by
the target (its :class:`~mltrain.compute.ssh.pool.HostPool`) only when the composed config is the
same; otherwise they are closed unused.

Each host's OpenSSH client is started at once (:meth:`Remote.spawn`), and a thread of its own reads
what it brings, the helper's probe (:meth:`Remote.bootstrap`, which connects with paramiko instead
when OpenSSH cannot). An
early connection never records a host key: it uses ``host_key_policy: reject`` whatever the remembered
config says, so an unknown key is left to the run's own connection and the run's own policy. A host
the early connection could not reach is simply connected again, as usual, when the run asks for it.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from mltrain.compute.ssh.config import SSHComputeConfig
from mltrain.compute.ssh.conn import Remote

_lock = threading.Lock()
_pending: tuple[SSHComputeConfig, list[Remote]] | None = None


def _warm(remote: Remote) -> None:
    try:
        remote.bootstrap()
    except Exception:  # noqa: BLE001 - the run connects again and reports what is wrong
        remote.close()


def _remotes(node: dict[str, Any]) -> tuple[SSHComputeConfig, list[Remote]] | None:
    """The SSH compute config ``node`` and its hosts as early connections see them; None when it is not one."""
    try:
        cfg = SSHComputeConfig(**node)
    except Exception:  # noqa: BLE001 - not (or no longer) a valid SSH config: nothing to connect to
        return None
    strict = dataclasses.replace(cfg, host_key_policy="reject")
    return cfg, [Remote(host, strict) for host in strict.hosts]


def link_commands(node: dict[str, Any]) -> list[list[str]]:
    """The ``ssh`` command lines :func:`begin` starts for ``node`` (stored for the entry point's
    :mod:`~mltrain.compute.ssh.prespawn`); none when it is not an SSH config or OpenSSH is off."""
    made = _remotes(node)
    return [args for remote in made[1] if (args := remote.link_argv())] if made else []


def begin(node: dict[str, Any]) -> bool:
    """Start connecting to the hosts of the SSH compute config ``node``; False when it is not one."""
    global _pending
    made = _remotes(node)
    if made is None:
        return False
    discard()
    cfg, remotes = made
    for remote in remotes:
        try:
            remote.spawn()  # OpenSSH connects in a process of its own while this one imports and composes
        except Exception:  # noqa: BLE001, S110 - the thread below connects (or the run says why it cannot)
            pass
        remote.warming = threading.Thread(target=_warm, args=(remote,), name="mltrain-ssh-early", daemon=True)
        remote.warming.start()
    with _lock:
        _pending = (cfg, remotes)
    return True


def adopt(cfg: SSHComputeConfig) -> list[Remote] | None:
    """The early connections when they were made for ``cfg`` (each is then the pool's, which gives it
    ``cfg`` once its attempt ended); None when there are none (those made for another config are closed)."""
    global _pending
    with _lock:
        pending, _pending = _pending, None
    if pending is None:
        return None
    made, remotes = pending
    if made != cfg:  # the run goes on with connections of its own
        _close_later(remotes)
        return None
    return remotes


def discard() -> threading.Thread | None:
    """Close the early connections no target adopted, in the background (an attempt may still wait
    for its host); the thread closing them, if any."""
    global _pending
    with _lock:
        pending, _pending = _pending, None
    return None if pending is None else _close_later(pending[1])


def _close_later(remotes: list[Remote]) -> threading.Thread:
    def close() -> None:
        for remote in remotes:
            if remote.warming is not None:
                remote.warming.join()
            remote.close()

    thread = threading.Thread(target=close, name="mltrain-ssh-early-close", daemon=True)
    thread.start()
    return thread
