"""Command-line overrides that Hydra cannot apply as typed: a list given for a key whose current
value is a mapping (``job.arguments=[--C,2,--verbose]`` where the job config has ``arguments:
{kernel: rbf}``). Hydra merges a new value into the old one, and a list cannot merge into a
mapping, so such an override is preceded by ``KEY=null`` (the old value is dropped, then the list
is set); the recorded overrides are the user's own."""

from __future__ import annotations

REPLACEABLE = ("job.arguments",)  # keys that may hold a mapping or a list


def _resets(arg: str) -> str | None:
    for key in REPLACEABLE:
        if arg.startswith(f"{key}=["):
            return f"{key}=null"
    return None


def expand(argv: list[str]) -> list[str]:
    """``argv`` with ``KEY=null`` before each list override of a key in REPLACEABLE."""
    out: list[str] = []
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
