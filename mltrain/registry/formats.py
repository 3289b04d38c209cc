"""Model file formats: joblib (default; pickle-based, so loading runs code) and skops (the secure format).

The format from a file's name and the format from its content must agree: :func:`check_model_file`
refuses e.g. a pickle under a ``.skops`` name. :func:`root_class` reads the class of the stored object
without loading it (pickle opcodes / skops' schema), so only a scikit-learn estimator is labelled
ScikitLearn.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import pickletools
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import PurePath
from typing import IO

from mltrain.errors import RegistryError
from mltrain.serving.formats import CODE_EXECUTING, sniff_format

FORMATS = ("joblib", "skops")
MODEL_EXTENSIONS = {".joblib": "joblib", ".pkl": "joblib", ".pickle": "joblib", ".skops": "skops"}
SCAN_BYTES = 1 << 20  # how much of a pickle is read to find the class of its root object
TRUST_NOTE = (
    "{ref} is a {fmt} file: loading or deploying it runs code stored in the file (pickle), "
    "so it is trusted at load time; save models as .skops (skops.io.dump) to load them without running code"
)

__all__ = ["CODE_EXECUTING", "FORMATS", "MODEL_EXTENSIONS", "sniff_format"]


def detect_format(path: str, declared: str | None = None) -> str:
    """The format of a model file: ``declared`` if given, else from the file extension."""
    if declared:
        if declared not in FORMATS:
            raise RegistryError(f"unknown model format {declared!r}", hint=f"use one of: {', '.join(FORMATS)}")
        return declared
    return MODEL_EXTENSIONS.get(PurePath(path).suffix.lower(), "joblib")


def is_code_executing(fmt: str) -> bool:
    """Whether loading a model of format ``fmt`` runs code from the file."""
    return CODE_EXECUTING.get(fmt, True)


def check_model_file(path: str | os.PathLike[str], relpath: str, declared: str | None = None) -> str | None:
    """The format of the model file ``path`` (stored as ``relpath``); RegistryError when its name (or
    ``declared``) and its content disagree. None for a file that is not a model file by name or content."""
    by_name = MODEL_EXTENSIONS.get(PurePath(relpath).suffix.lower())
    claimed = declared or by_name
    found = sniff_format(path)
    if claimed is None:
        return found
    if found != claimed:
        source = f"--format {declared}" if declared else f"its name ({relpath})"
        content = f"a {found} file" if found else "neither a joblib (pickle) nor a skops file"
        if declared and found:
            hint = f"drop --format, or pass --format {found}"
        elif found:
            hint = f"save the model in the format its name says, or rename it to {_renamed(relpath, found)}"
        else:
            hint = "register the model file itself (saved with joblib.dump or skops.io.dump)"
        raise RegistryError(
            f"refusing to register {relpath}: it is {content}, not {claimed} as {source} says", hint=hint
        )
    return found


def _renamed(relpath: str, fmt: str) -> str:
    return str(PurePath(relpath).with_suffix(".skops" if fmt == "skops" else ".joblib"))


def _pickle_stream(f: IO[bytes]) -> IO[bytes]:
    head = f.read(8)
    f.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=f)  # type: ignore[return-value]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(f)  # type: ignore[return-value]
    if head.startswith((b"\xfd7zXZ\x00", b"\x5d\x00\x00")):
        return lzma.LZMAFile(f)  # type: ignore[return-value]
    return f


def _head(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as f:
        first = f.read(1)
        f.seek(0)
        if first == b"\x78":  # joblib's zlib compressor: a raw zlib stream
            return zlib.decompressobj().decompress(f.read(SCAN_BYTES), SCAN_BYTES)
        return _pickle_stream(f).read(SCAN_BYTES)


def _pickle_root_class(data: bytes) -> str | None:
    """``module.name`` of the class the pickle's root object is built from; None for a container or builtin."""
    strings: list[str] = []
    ops: Iterator[tuple[pickletools.OpcodeInfo, object, int | None]] = pickletools.genops(data)
    try:
        for op, arg, _pos in ops:
            if op.name in ("PROTO", "FRAME"):
                continue
            if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                return arg.replace(" ", ".")
            if op.name == "STACK_GLOBAL":
                return ".".join(strings[-2:]) if len(strings) >= 2 else None
            if "UNICODE" in op.name and isinstance(arg, str):
                strings.append(arg)
            elif op.name not in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
                return None  # the root is a container, a builtin or a reference
    except (ValueError, EOFError):
        return None
    return None


def root_class(path: str | os.PathLike[str], fmt: str | None = None) -> str | None:
    """``module.name`` of the object stored in a joblib or skops file, read without loading it; else None."""
    fmt = fmt or sniff_format(path)
    try:
        if fmt == "skops":
            with zipfile.ZipFile(path) as zf, zf.open("schema.json") as f:
                schema = json.load(f)
            return f"{schema.get('__module__')}.{schema.get('__class__')}" if isinstance(schema, dict) else None
        if fmt == "joblib":
            return _pickle_root_class(_head(path))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, lzma.LZMAError, zlib.error):
        return None
    return None


def is_sklearn_estimator(path: str | os.PathLike[str], fmt: str | None = None) -> bool:
    """Whether the stored object is an instance of a scikit-learn class (not loaded to find out)."""
    cls = root_class(path, fmt)
    return bool(cls) and (cls == "sklearn" or cls.startswith("sklearn."))  # type: ignore[union-attr]
