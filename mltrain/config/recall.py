"""A single run's composed config, remembered per command line, so that running the same command line
again in the same folder skips composing (importing Hydra and composing take ~0.25 s of CPU, which on
a small machine competes with the run's SSH handshake).

The forked composing child (:mod:`mltrain.config.prefork`) records, next to what it composed, what the
composition read (:func:`inputs`): every config file and folder of Hydra's search path and the
project's ``conf/`` (present or not), the code that composed it (each module file outside the
standard library, each namespace package's folders, and in each ``sys.path`` folder the names that
could shadow a module it imported), and a digest of the environment, the interpreter and ``sys.path``.
:func:`recall` hands the config back only when all of these are as they were (modification time, size
and inode of each path, the names in each folder). Nothing is remembered for a config
whose interpolations use a resolver that could answer differently next time (``${now:...}``, a
plugin's own), that holds a secret (the cluster token), or that only Hydra's own run composes
(callbacks, an output folder). The file is the user's own and no one else may write it
(:func:`~mltrain.environments.cache_json.load` with ``private``); anything damaged reads as nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from mltrain.compute.ssh.prespawn import command_key
from mltrain.environments import cache_json

PREFIX = "composed-"  # one file per command line: composed-KEY.json in the cache folder
KEEP = 16  # command lines remembered
MAX_PATHS = 5000  # a config tree larger than this (or a symlink loop) is not remembered
# resolvers whose answer depends only on what the digest and the paths cover
STEADY_RESOLVERS = frozenset(
    {"oc.env", "oc.select", "oc.decode", "oc.create", "oc.deprecated", "oc.dict.keys", "oc.dict.values"}
    | {"mltrain.bundled"}
)
_RESOLVER = re.compile(r"\$\{\s*([A-Za-z_][\w.\-]*)\s*:")
# variables a shell sets by itself (``sh -c`` adds PWD): left out of the digest, so a config reading
# one of them is not remembered
SHELL_KEPT = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})
_READS_SHELL_KEPT = re.compile(rf"oc\.env\s*:\s*(?:{'|'.join(sorted(SHELL_KEPT))})\s*[,}}]")

Payload = dict[str, Any]  # {"config": ..., "overrides": [...], "env": {...}} (mltrain.config.prefork)
Stamp = list[int] | None


def environment_digest(environ: Mapping[str, str] | None = None) -> str:
    """Digest of the environment variables (but a shell's own bookkeeping, :data:`SHELL_KEPT`), the
    interpreter and ``sys.path`` (taken before composing)."""
    env = sorted((k, v) for k, v in (os.environ if environ is None else environ).items() if k not in SHELL_KEPT)
    return hashlib.sha256(json.dumps([env, sys.executable, sys.version, sys.path]).encode()).hexdigest()


def stamp(path: str) -> Stamp:
    """What changes when ``path`` is written, replaced or removed: its modification time, size and inode
    (not its ctime: installers that hard-link files from their cache, as uv does, change it whenever
    another environment links the same file)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size, st.st_ino]


def resolvers(node: Any) -> set[str]:
    """The resolvers the interpolations in ``node`` (plain containers, unresolved) call (``oc.env (shell)``:
    ``oc.env`` of a variable in :data:`SHELL_KEPT`)."""
    if isinstance(node, dict):
        return set().union(*(resolvers(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(resolvers(v) for v in node)) if node else set()
    if not isinstance(node, str):
        return set()
    return set(_RESOLVER.findall(node)) | ({"oc.env (shell)"} if _READS_SHELL_KEPT.search(node) else set())


def _tree(root: str) -> Iterator[str]:
    """``root`` and everything under it (symlinked folders followed, as Hydra does)."""
    yield root
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in dirs + files:
            yield os.path.join(folder, name)


def _source_folders() -> list[str]:
    """The folders of the initialised Hydra's config search path (``file://`` and ``pkg://``)."""
    from hydra.core.global_hydra import GlobalHydra

    folders = []
    for source in GlobalHydra.instance().config_loader().get_sources():
        if source.scheme() == "file":
            folders.append(os.path.abspath(source.path))
        elif source.scheme() == "pkg":
            import importlib.util

            spec = importlib.util.find_spec(source.path.replace("/", ".").strip("."))
            folders += list(spec.submodule_search_locations or []) if spec else []
    return folders


def _code_files() -> set[str]:
    """The module files loaded in this process outside the standard library, and the folders of its
    namespace packages (``hydra_plugins``: a plugin installed there is found by listing them)."""
    import sysconfig

    std = tuple(os.path.join(sysconfig.get_paths()[k], "") for k in ("stdlib", "platstdlib"))
    files = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and os.path.isabs(path) and (not path.startswith(std) or "site-packages" in path):
            files.add(path)
        elif path is None and isinstance(getattr(module, "__path__", None), Iterable):
            files.update(p for p in module.__path__ if isinstance(p, str) and os.path.isabs(p))
    return files


def shadows(tops: Iterable[str]) -> list[list[Any]]:
    """For each ``sys.path`` folder, its entries named like the top-level modules ``tops`` (a file or
    package that appears there first would be imported instead)."""
    tops = set(tops)
    out: list[list[Any]] = []
    for folder in sys.path:
        try:
            names = sorted(n for n in os.listdir(folder or ".") if n.split(".", 1)[0] in tops)
        except OSError:
            names = None
        out.append([folder, names])
    return out


def inputs(config: Any, digest: str) -> dict[str, Any] | None:
    """What a plain run's composition of ``config`` (unresolved, plain containers) read, while Hydra is
    still initialised; None when it is not to be remembered (see the module's docstring)."""
    from mltrain.config.overrides import project_conf_dir

    if not resolvers(config) <= STEADY_RESOLVERS:
        return None
    paths = _code_files()
    paths.add(project_conf_dir())
    for folder in _source_folders():
        for path in _tree(folder):
            paths.add(path)
            if len(paths) > MAX_PATHS:
                return None
    tops = sorted({name.split(".", 1)[0] for name in sys.modules})
    return {"env": digest, "stamps": [[p, stamp(p)] for p in sorted(paths)], "tops": tops, "shadows": shadows(tops)}


def remember(argv: list[str], payload: Payload, read: dict[str, Any]) -> None:
    """Store ``payload`` as the composition of ``argv`` in this folder, with what it ``read``."""
    from mltrain.compute.configs import redact_secrets

    if redact_secrets(payload["config"]) is not payload["config"]:
        return  # a secret is never written to the cache
    cache_json.store(file_name(argv), {"payload": payload, **read})
    cache_json.keep_newest(PREFIX, KEEP)


def file_name(argv: list[str], cwd: str | None = None) -> str:
    """The cache folder's file that remembers the command line ``argv`` run in ``cwd`` (default: here)."""
    return f"{PREFIX}{command_key(argv, cwd)}.json"


def _valid(payload: Any) -> bool:
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("config"), dict)
        and isinstance(payload.get("overrides"), list)
        and all(isinstance(o, str) for o in payload["overrides"])
        and isinstance(payload.get("env"), dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in payload["env"].items())
    )


def recall(argv: list[str], digest: str) -> Payload | None:
    """The payload ``argv`` composed to last time in this folder, when nothing it read has changed
    since and the environment's ``digest`` is the same; None otherwise."""
    entry = cache_json.load(file_name(argv), dict, private=True)
    tops = entry.get("tops")
    if entry.get("env") != digest or not isinstance(entry.get("stamps"), list) or not isinstance(tops, list):
        return None
    if not all(isinstance(t, str) for t in tops) or shadows(tops) != entry.get("shadows"):
        return None
    for item in entry["stamps"]:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)) or stamp(item[0]) != item[1]:
            return None
    payload = entry.get("payload")
    return payload if _valid(payload) else None
