"""The error of a host that stopped answering (its own module: the connection and the channels over
it both raise it)."""

from __future__ import annotations

from mltrain.errors import ComputeError


class ConnectionLost(ComputeError):
    """The host does not answer: it cannot be reached, or its connection broke."""
