"""Recognise a model file's format from its content, without loading it (standard library only).

skops files are zip archives holding a ``schema.json``; joblib files are pickles, plain or compressed
by one of joblib's compressors. Anything else is neither.
"""

from __future__ import annotations

import os
import zipfile

CODE_EXECUTING = {"joblib": True, "skops": False}  # loading runs code from the file (pickle)
# joblib: a pickle (protocol >= 2 starts with 0x80) or one of its compressors' headers
JOBLIB_MAGIC = (b"\x80", b"\x78", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x5d\x00\x00", b"\x04\x22\x4d\x18", b"ZF")


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
    if head.startswith(JOBLIB_MAGIC):
        return "joblib"
    return None
