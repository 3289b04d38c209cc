"""Model file formats: joblib (default) and skops (the secure format).

``sniff_format`` recognises a file by its first bytes without loading it: skops files are zip
archives with a ``schema.json``; joblib files are pickles, plain or compressed.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import PurePath

from mltrain.errors import RegistryError

FORMATS = ("joblib", "skops")
MODEL_EXTENSIONS = {".joblib": "joblib", ".pkl": "joblib", ".pickle": "joblib", ".skops": "skops"}
_EXTENSIONS = MODEL_EXTENSIONS
# joblib: a pickle (protocol >= 2 starts with 0x80) or one of its compressors' headers
_JOBLIB_MAGIC = (b"\x80", b"\x78", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x5d\x00\x00", b"\x04\x22\x4d\x18", b"ZF")


def detect_format(path: str, declared: str | None = None) -> str:
    """The format of a model file: ``declared`` if given, else from the file extension."""
    if declared:
        if declared not in FORMATS:
            raise RegistryError(f"unknown model format {declared!r}", hint=f"use one of: {', '.join(FORMATS)}")
        return declared
    return _EXTENSIONS.get(PurePath(path).suffix.lower(), "joblib")


def sniff_format(path: str | os.PathLike[str]) -> str | None:
    """ "skops" or "joblib" when the file's content looks like one (nothing is loaded), else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                return "skops" if "schema.json" in zf.namelist() else None
        except (zipfile.BadZipFile, OSError):
            return None
    if head.startswith(_JOBLIB_MAGIC):
        return "joblib"
    return None
