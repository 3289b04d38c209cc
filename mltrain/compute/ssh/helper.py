"""mltrain's helper as a host gets it: a zip of the node-side package (:func:`agent_archive`) unpacked
once into a folder of the host's workdir, and the shell command that puts it there and starts it
(:func:`start_script`).
"""

from __future__ import annotations

import hashlib
import shlex
from functools import cache

AGENT_MAIN = b"import sys\nfrom mltrain.remote.ssh_main import main\nmain(sys.argv[1:])\n"
FLAGS = "-S"  # the helper is standard library only: no site (a host's .pth files), see mltrain.remote.ssh_main
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
def _members() -> dict[str, bytes]:
    from mltrain.bundled import package_dir
    from mltrain.environments.shim import REMOTE_FILES

    members = {"__main__.py": AGENT_MAIN, "mltrain/__init__.py": b""}
    members.update({f"mltrain/{rel}": (package_dir() / rel).read_bytes() for rel in REMOTE_FILES})
    return members


@cache
def agent_name() -> str:
    """The helper's folder name on a host: a digest of its files (names and contents), so a changed
    helper goes to a new folder; known without building the zip (a connection starts sooner)."""
    digest = hashlib.sha256()
    for name, data in sorted(_members().items()):
        digest.update(b"%d:%s\0%d:" % (len(name), name.encode(), len(data)) + data)
    return f"agent-{digest.hexdigest()[:16]}"


@cache
def agent_archive() -> bytes:
    """The helper as a host runs it: a zip of every module of the node-side package (``mltrain/remote/``)
    whose ``__main__`` runs :mod:`mltrain.remote.ssh_agent`; the same bytes for the same sources."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in _members().items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def archive_message() -> bytes:
    """What a host that asked for the helper (``need``) gets: the zip's length on a line, then the zip."""
    source = agent_archive()
    return b"%d\n" % len(source) + source


def start_script(workdir: str, python: str, known: str | None = None) -> tuple[str, str]:
    """The shell command that unpacks the helper into ``workdir`` when it is missing (it then says
    ``need`` and reads :func:`archive_message` on stdin) and runs it as ``serve probe`` with ``python``
    (``known``, the interpreter's real path, instead while it exists); and the helper's folder name."""
    name = agent_name()
    shell_dir = '"$HOME"/' + shlex.quote(workdir[2:]) if workdir.startswith("~/") else shlex.quote(workdir)
    named = shlex.quote(python)
    choose = f'P={shlex.quote(known)}; [ -x "$P" ] || P={named}; ' if known else f"P={named}; "
    script = (
        f'W={shell_dir}; A="$W/{name}"; {choose}command -v "$P" >/dev/null 2>&1 || exit 91; '
        f'if [ ! -f "$A/__main__.py" ]; then mkdir -p "$W" || exit 90; echo need; '
        f'read N && head -c "$N" > "$A.$$.zip" && "$P" {FLAGS} -c {shlex.quote(UNPACK)} "$A.$$.zip" "$A" '
        f'|| exit 90; fi; exec "$P" {FLAGS} "$A" "$W" serve probe'
    )
    return script, name
