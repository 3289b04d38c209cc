"""The in-script API made importable in any job environment: a copy of mltrain's standard-library
modules (``mltrain/__init__.py``, ``mltrain/run_context.py``) in a cache folder put on PYTHONPATH.
Files under ``compat/`` (stand-ins of other platforms' packages, e.g. ``compat/azureml/...``) are
copied to the top of the folder (``azureml/...``). Ray nodes also get the node-side package
(``mltrain/remote/``, :data:`REMOTE_FILES`)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from mltrain.bundled import package_dir
from mltrain.environments.cache import cache_root

SHIM_FILES = ("__init__.py", "run_context.py")
# every module of the node-side package (standard library only), listed from its folder
REMOTE_FILES = tuple(sorted(f"remote/{p.name}" for p in (package_dir() / "remote").glob("*.py")))


def ensure_shim(files: tuple[str, ...] = SHIM_FILES) -> Path:
    """A folder holding ``mltrain/<file>`` for each of ``files`` (package-relative); made once."""
    sources = [package_dir() / f for f in files]
    digest = hashlib.sha256()
    for f, src in zip(files, sources, strict=True):
        digest.update(f.encode() + b"\0" + src.read_bytes() + b"\0")
    target = cache_root() / "shim" / digest.hexdigest()[:16]
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".shim-", dir=target.parent))
    for f, src in zip(files, sources, strict=True):
        dest = scratch / (f.removeprefix("compat/") if f.startswith("compat/") else f"mltrain/{f}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    try:
        os.rename(scratch, target)
    except OSError:  # made by another process meanwhile
        shutil.rmtree(scratch, ignore_errors=True)
    return target
