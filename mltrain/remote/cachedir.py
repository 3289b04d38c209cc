"""Where a machine's mltrain cache folder is, with nothing but :mod:`os` imported: the driver's
(``mltrain.environments.cache``, read by the command line's entry point before anything else) and a
node's (:mod:`~mltrain.remote.inputs`)."""

from __future__ import annotations

import os


def cache_dir() -> str:
    """``$MLTRAIN_CACHE_DIR``, else ``$XDG_CACHE_HOME/mltrain``, else ``~/.cache/mltrain`` (absolute)."""
    explicit = os.environ.get("MLTRAIN_CACHE_DIR")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.abspath(os.path.join(base, "mltrain"))
