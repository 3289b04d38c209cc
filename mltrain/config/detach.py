"""``python -m mltrain detach=true [-m] OVERRIDES``: record the run, start its driver in a session of its
own, print the run's id and how to follow it, and return.

A single run is composed and checked as ``python -m mltrain`` does (in a forked child, while this
process opens the workspace), so a config error is still reported here with exit code 2; the
environment is resolved and built and the source snapshotted by the detached driver
(:mod:`mltrain.runs.detach`). A sweep (``-m``) is the whole command detached: this returns once it
has recorded the sweep run, or with its error.
"""

from __future__ import annotations

import sys
from typing import Any

from mltrain.errors import ConfigError

DETACH_KEY = "detach"
MULTIRUN = ("-m", "--multirun")
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def split_detach(argv: list[str]) -> tuple[bool, list[str]]:
    """Whether ``argv`` asks for a detached run (``detach=true``; the last one given wins), and ``argv``
    without it. ConfigError for a value that is not a boolean."""
    detach, rest = False, []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") == DETACH_KEY:
            if value.strip().lower() in TRUE:
                detach = True
            elif value.strip().lower() in FALSE:
                detach = False
            else:
                raise ConfigError(f"detach={value!r} is not true or false", hint="detach=true starts the run detached")
            continue
        rest.append(arg)
    return detach, rest


def _check(payload: dict[str, Any]) -> None:
    """The composed job's checks that need no workspace (in the composing child)."""
    from mltrain.runs.plan import check_config

    check_config(payload["config"])


def _open_workspace() -> Any:
    from mltrain.runs import detach  # noqa: F401 - imported while the child composes
    from mltrain.runs.driver import open_default_workspace

    return open_default_workspace()


def main(argv: list[str]) -> int:
    """Start the run (or sweep) of ``argv`` (``detach=...`` removed) detached; the exit code."""
    from mltrain.text import print_error

    options = [a for a in argv if a.startswith("-") and a not in MULTIRUN]
    if options:
        print_error(
            ConfigError(
                f"detach=true starts a run or a sweep; it does not go with {' '.join(options)}",
                hint="python -m mltrain detach=true [-m] OVERRIDES",
            )
        )
        return 2
    if any(a in MULTIRUN for a in argv):
        return _sweep(argv)
    from mltrain.config.prefork import compose_forked

    payload, code, prewarmed = compose_forked(argv, _open_workspace, check=_check)
    if payload is None:
        return code
    from mltrain.runs.detach import follow_hint, start
    from mltrain.runs.driver import workspace_for

    ws = workspace_for(payload["config"], prewarmed)
    try:
        started = start(ws, payload["config"], payload["overrides"], payload["env"])
    except ConfigError as exc:  # what needs the workspace's records (an unknown data version): nothing recorded
        print_error(exc)
        return 2
    print(follow_hint(started.run_id))
    return 0


def _sweep(argv: list[str]) -> int:
    from mltrain.errors import MltrainError
    from mltrain.runs.detach import follow_hint, start_command

    try:
        run_id = start_command(argv)
    except MltrainError as exc:
        print(exc.message, file=sys.stderr)
        return exc.exit_code
    print(follow_hint(run_id))
    return 0
