"""Names a user gives (experiments, models, endpoints, data assets, aliases): one rule, checked before
anything is stored.

A name is 1 to ``MAX_LENGTH[kind]`` characters of letters, digits, ``.``, ``_`` and ``-``, starting
with a letter or digit: safe as a folder name, a container name, a URL part and a table value.
"""

from __future__ import annotations

import re

from mltrain.errors import ConfigError, MltrainError

MAX_LENGTH = {"experiment": 255, "model": 255, "endpoint": 63, "data asset": 255, "alias": 128}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def name_problem(name: object, kind: str) -> str | None:
    """Why ``name`` is not a valid ``kind`` name, or None when it is."""
    limit = MAX_LENGTH[kind]
    if not isinstance(name, str) or not name:
        return "it is empty"
    if len(name) > limit:
        return f"it is {len(name)} characters long (at most {limit})"
    if not _NAME.fullmatch(name):
        if not name[0].isascii() or not name[0].isalnum():
            return f"it starts with {name[0]!r}, not a letter or digit"
        return "it holds characters other than letters, digits, '.', '_' and '-'"
    return None


def check_name(name: object, kind: str, error: type[MltrainError] = ConfigError) -> str:
    """``name`` if it is a valid ``kind`` name (a key of ``MAX_LENGTH``); else ``error`` saying why."""
    problem = name_problem(name, kind)
    if problem is not None:
        shown = repr(name) if not isinstance(name, str) or len(name) <= 80 else repr(name[:80]) + "..."
        raise error(
            f"{shown} is not a valid {kind} name: {problem}",
            hint=f"use 1 to {MAX_LENGTH[kind]} letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return name  # type: ignore[return-value]
