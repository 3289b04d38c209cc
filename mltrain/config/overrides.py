"""Command-line overrides mltrain adds to the user's.

- A list given for a key whose current value is a mapping (``job.arguments=[--C,2,--verbose]``
  where the job config has ``arguments: {kernel: rbf}``): Hydra merges a new value into the old
  one, and a list cannot merge into a mapping, so such an override is preceded by ``KEY=null`` (the
  old value is dropped, then the list is set). The recorded overrides are the user's own.
- A project's own ``conf/config.yaml`` replaces mltrain's primary config, and with it mltrain's
  Hydra settings (no output folder in the project, no logging set-up): they are added as
  ``hydra.*`` overrides, each unless the user's file or command line sets it.
"""

from __future__ import annotations

import os
from typing import Any

HYDRA_SETTINGS = {  # as in mltrain's conf/config.yaml
    "hydra.run.dir": ".",
    "hydra.output_subdir": "null",
    "hydra.job.chdir": "false",
    "hydra/job_logging": "none",
    "hydra/hydra_logging": "none",
}

REPLACEABLE = ("job.arguments",)  # keys that may hold a mapping or a list


def _resets(arg: str) -> str | None:
    for key in REPLACEABLE:
        if arg.startswith(f"{key}=["):
            return f"{key}=null"
    return None


def project_conf_dir() -> str:
    """The project's config folder: ``$MLTRAIN_PROJECT_CONF``, else ``./conf`` (absolute; it may not exist)."""
    return os.path.abspath(os.environ.get("MLTRAIN_PROJECT_CONF") or "conf")


def _project_config() -> str | None:
    path = os.path.join(project_conf_dir(), "config.yaml")
    return path if os.path.isfile(path) else None


def _set_in(config: Any, key: str) -> bool:
    """Whether the user's primary config sets ``key`` (``a.b.c``, or ``group/name`` in its defaults)."""
    if not isinstance(config, dict):
        return False
    if "/" in key:
        return any(isinstance(d, dict) and any(key in str(k) for k in d) for d in config.get("defaults") or [])
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def hydra_settings(argv: list[str]) -> list[str]:
    """mltrain's Hydra settings as overrides, when the project has its own conf/config.yaml."""
    path = _project_config()
    if path is None:
        return []
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        config = None  # Hydra reports a broken file itself
    given = {a.lstrip("+~").split("=", 1)[0] for a in argv}
    return [f"{k}={v}" for k, v in HYDRA_SETTINGS.items() if k not in given and not _set_in(config, k)]


def expand(argv: list[str]) -> list[str]:
    """``argv`` with ``KEY=null`` before each list override of a key in REPLACEABLE, and mltrain's
    Hydra settings when the project's conf/config.yaml replaces mltrain's."""
    out: list[str] = hydra_settings(argv)
    for arg in argv:
        reset = _resets(arg)
        if reset is not None:
            out.append(reset)
        out.append(arg)
    return out


def user_overrides(overrides: list[str]) -> list[str]:
    """The overrides as the user gave them: without the resets ``expand`` added."""
    out: list[str] = []
    for i, arg in enumerate(overrides):
        nxt = overrides[i + 1] if i + 1 < len(overrides) else ""
        if _resets(nxt) == arg:
            continue
        out.append(arg)
    return out
