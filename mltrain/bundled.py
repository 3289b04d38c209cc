"""Locations of the files shipped with mltrain (configs, examples, the job shim sources)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def bundled_dir(name: str) -> Path:
    """Return the folder ``name`` (``conf`` or ``examples``) of this installation.

    A wheel carries them under ``mltrain/_bundled``; an editable install reads them from the
    repository root beside the package.
    """
    for candidate in (_PACKAGE_DIR / "_bundled" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"mltrain installation is incomplete: no bundled folder {name!r}")


def package_dir() -> Path:
    """The folder of the ``mltrain`` package itself."""
    return _PACKAGE_DIR
