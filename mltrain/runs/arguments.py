"""The script's command line from ``job.arguments`` and ``job.args``."""

from __future__ import annotations

from typing import Any

from mltrain.errors import ConfigError


def job_argv(arguments: Any, args: Any, bool_style: str = "flag") -> list[str]:
    """``job.arguments`` followed by ``job.args``.

    A dict gives ``--key value`` (``true`` a bare ``--key`` and ``false`` nothing, argparse's
    ``store_true`` convention, unless ``bool_style`` is ``value``: ``--key true|false``; a list
    gives ``--key v1 v2``; null leaves the key out); a list is passed as is. A nested dict, or any
    other shape, is a ConfigError.
    """
    if bool_style not in ("flag", "value"):
        raise ConfigError(f"job.bool_style is {bool_style!r}", hint="set job.bool_style to flag or value")
    argv: list[str] = []
    if isinstance(arguments, dict):
        for key, value in arguments.items():
            if value is None:
                continue
            flag = key if str(key).startswith("-") else f"--{key}"
            if isinstance(value, dict):
                raise ConfigError(
                    f"job.arguments.{key} is a nested mapping; a script argument takes a value or a list",
                    hint=f"give job.arguments.{key} a scalar or a list, or pass it as JSON text: "
                    f"job.arguments.{key}='{{...}}' quoted",
                )
            if isinstance(value, bool):
                if bool_style == "value":
                    argv += [flag, "true" if value else "false"]
                elif value:
                    argv.append(flag)
            elif isinstance(value, (list, tuple)):
                argv += [flag, *(str(v) for v in value)]
            else:
                argv += [flag, str(value)]
    elif isinstance(arguments, (list, tuple)):
        for item in arguments:
            if isinstance(item, (dict, list, tuple)):
                raise ConfigError(
                    f"job.arguments has a nested item {item!r}; a list of arguments holds plain values",
                    hint="write the list as it would be typed: job.arguments=[--C,2,--verbose]",
                )
        argv += [str(a) for a in arguments]
    elif arguments is not None:
        raise ConfigError(
            f"job.arguments is {arguments!r}; expected a mapping (--key value) or a list (passed as is)",
            hint="e.g. job.arguments={C: 2} or job.arguments=[--C,2]",
        )
    return argv + [str(a) for a in (args or [])]
