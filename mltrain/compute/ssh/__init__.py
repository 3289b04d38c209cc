"""SSH compute: jobs run on a pool of the user's own machines reached over SSH.

:mod:`~mltrain.compute.ssh.target` (the target), :mod:`~mltrain.compute.ssh.pool` (hosts and slots),
:mod:`~mltrain.compute.ssh.conn` (one host: connection, host keys, mltrain's helper there),
:mod:`~mltrain.compute.ssh.sync` (files through the host's blob cache),
:mod:`~mltrain.compute.ssh.handle` (a job followed over one channel). The helper itself, run on the
hosts, is :mod:`mltrain.remote.ssh_agent`; environments built there, :mod:`mltrain.environments.remote`;
:mod:`~mltrain.compute.ssh.openssh` (the OpenSSH client as the helper's link).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mltrain.compute.ssh.config import SSHComputeConfig, SSHHostConfig
    from mltrain.compute.ssh.target import SSHCompute

__all__ = ["SSHCompute", "SSHComputeConfig", "SSHHostConfig"]


def __getattr__(name: str) -> Any:
    """Imported when first asked for: an early connection (:mod:`~mltrain.compute.ssh.early`) starts
    before the target's modules are imported, and the first one (:mod:`~mltrain.compute.ssh.prespawn`)
    before anything but the standard library."""
    if name == "SSHCompute":
        from mltrain.compute.ssh.target import SSHCompute

        return SSHCompute
    if name in ("SSHComputeConfig", "SSHHostConfig"):
        from mltrain.compute.ssh import config

        return getattr(config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
