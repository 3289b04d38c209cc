"""mltrain's helper as a host gets it: a zip of the node-side package (:func:`agent_archive`) unpacked
once into a folder of the host's workdir, and the shell command that puts it there and starts it
(:func:`start_script`).
"""

from __future__ import annotations

import hashlib
import io
import shlex
import zipfile
from functools import cache

AGENT_MAIN = b"import sys\nfrom mltrain.remote.ssh_agent import main\nmain(sys.argv[1:])\n"
# Unpacks the helper's zip (argv[1]) into its folder (argv[2]), which appears whole or not at all
# (a folder Python runs caches the bytecode of its modules: a zip's are compiled at every start)
UNPACK = (
    "import os, shutil, sys, zipfile\n"
    "archive, folder = sys.argv[1:]\n"
    "zipfile.ZipFile(archive).extractall(archive[:-4])\n"
    "os.remove(archive)\n"
    "try:\n"
    "    os.rename(archive[:-4], folder)\n"
    "except OSError:  # another connection unpacked it first\n"
    "    shutil.rmtree(archive[:-4])\n"
)


@cache
def agent_archive() -> bytes:
    """The helper as a host runs it: a zip of every module of the node-side package (``mltrain/remote/``)
    whose ``__main__`` runs :mod:`mltrain.remote.ssh_agent`; the same bytes for the same sources."""
    from mltrain.bundled import package_dir
    from mltrain.environments.shim import REMOTE_FILES

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        members = {"__main__.py": AGENT_MAIN, "mltrain/__init__.py": b""}
        members.update({f"mltrain/{rel}": (package_dir() / rel).read_bytes() for rel in REMOTE_FILES})
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def start_script(workdir: str, python: str, known: str | None = None) -> tuple[str, str]:
    """The shell command that unpacks the helper into ``workdir`` when it is missing (its zip then comes
    on stdin, after the line ``need``) and runs it as ``serve probe`` with ``python`` (``known``, the
    interpreter's real path, instead while it exists); and the helper's folder name."""
    source = agent_archive()
    name = f"agent-{hashlib.sha256(source).hexdigest()[:16]}"
    shell_dir = '"$HOME"/' + shlex.quote(workdir[2:]) if workdir.startswith("~/") else shlex.quote(workdir)
    named = shlex.quote(python)
    choose = f'P={shlex.quote(known)}; [ -x "$P" ] || P={named}; ' if known else f"P={named}; "
    script = (
        f'W={shell_dir}; A="$W/{name}"; {choose}command -v "$P" >/dev/null 2>&1 || exit 91; '
        f'if [ ! -f "$A/__main__.py" ]; then mkdir -p "$W" || exit 90; echo need; '
        f'head -c {len(source)} > "$A.$$.zip" && "$P" -c {shlex.quote(UNPACK)} "$A.$$.zip" "$A" '
        f'|| exit 90; fi; exec "$P" "$A" "$W" serve probe'
    )
    return script, name
