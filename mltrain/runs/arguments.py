"""The script's command line from ``job.arguments`` and ``job.args``."""

from __future__ import annotations

from typing import Any


def job_argv(arguments: Any, args: Any) -> list[str]:
    """``job.arguments`` ({key: value} as ``--key value``, or a list as is) followed by ``job.args``."""
    argv: list[str] = []
    if isinstance(arguments, dict):
        for key, value in arguments.items():
            if value is None:
                continue
            flag = key if str(key).startswith("-") else f"--{key}"
            if isinstance(value, bool):
                argv += [flag, "true" if value else "false"]
            elif isinstance(value, (list, tuple)):
                argv += [flag, *(str(v) for v in value)]
            else:
                argv += [flag, str(value)]
    elif isinstance(arguments, (list, tuple)):
        argv += [str(a) for a in arguments]
    return argv + [str(a) for a in (args or [])]
