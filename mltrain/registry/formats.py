"""Model file formats: joblib (default) and skops (the secure format)."""

from __future__ import annotations

from pathlib import PurePath

from mltrain.errors import RegistryError

FORMATS = ("joblib", "skops")
_EXTENSIONS = {".joblib": "joblib", ".pkl": "joblib", ".pickle": "joblib", ".skops": "skops"}


def detect_format(path: str, declared: str | None = None) -> str:
    """The format of a model file: ``declared`` if given, else from the file extension."""
    if declared:
        if declared not in FORMATS:
            raise RegistryError(f"unknown model format {declared!r}", hint=f"use one of: {', '.join(FORMATS)}")
        return declared
    return _EXTENSIONS.get(PurePath(path).suffix.lower(), "joblib")
