"""What an SSH host has: the helper's ``probe``, which a connection's helper answers before it imports
its other commands (:mod:`~mltrain.remote.ssh_main`), and ``has_pip`` of an interpreter that runs
without ``site`` (``python -S``, as the helper does)."""

from __future__ import annotations

import os
import platform
import shutil
import sys

from mltrain.remote.ssh_host import answer
from mltrain.remote.ssh_index import no_index_note


def free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def find_uv(work: str) -> str | None:
    own = os.path.join(work, "tools", "uv", "bin", "uv")
    return shutil.which("uv") or (own if os.access(own, os.X_OK) else None)


def has_pip() -> bool:
    """Whether this interpreter, started as usual (with ``site``), imports pip."""
    import importlib.util

    if importlib.util.find_spec("pip") is not None:
        return True
    if not sys.flags.no_site:
        return False
    import site  # (with -S, importing it changes nothing): the folders it would add, as site.venv() finds them

    here = os.path.dirname(os.path.abspath(sys.executable))
    venv = next((c for c in (here, os.path.dirname(here)) if os.path.isfile(os.path.join(c, "pyvenv.cfg"))), None)
    if venv is None:
        folders = site.getsitepackages([sys.prefix, sys.exec_prefix])
        if site.check_enableusersite():
            folders.append(site.getusersitepackages())
    else:
        folders = site.getsitepackages([venv, *([sys.base_prefix] if _system_site_packages(venv) else [])])
    return any(os.path.isfile(os.path.join(f, "pip", "__init__.py")) for f in folders)


def _system_site_packages(venv: str) -> bool:
    """Whether the venv ``venv``'s ``pyvenv.cfg`` lets it see the base interpreter's packages."""
    try:
        with open(os.path.join(venv, "pyvenv.cfg")) as f:
            for line in f:
                key, _, value = line.partition("=")
                if key.strip().lower() == "include-system-site-packages":
                    return value.strip().lower() == "true"
    except OSError:
        pass
    return False


def cmd_probe(work: str) -> None:
    os.makedirs(work, exist_ok=True)
    answer(
        {
            "workdir": os.path.realpath(work),
            "python": ".".join(map(str, sys.version_info[:3])),
            "executable": sys.executable,
            "uv": find_uv(work),
            "pip": has_pip(),
            "docker": shutil.which("docker"),
            "free_bytes": free_bytes(work),
            "cpus": os.cpu_count(),
            "uid": os.getuid(),
            "gid": os.getgid(),
            "machine": os.uname().machine,
            "libc": list(platform.libc_ver()),  # which wheels fit it (shipped to a host without the index)
            "no_index": no_index_note(work),  # a build here found no package index lately
        }
    )
