"""``mltrain``: manage the workspace (runs, experiments, models, data, environments, endpoints).

Each command group lives in its own module with an ``add_commands(subparsers, common)`` function;
commands get ``(args, ctx)`` and return an exit code. Imports are lazy so the command starts fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mltrain.errors import MltrainError
    from mltrain.registry.store import ModelRegistry
    from mltrain.workspace import Workspace

COMMAND_MODULES = ("runs", "models", "data", "envs", "endpoints", "snapshots", "workspace", "compute", "ui")
CREATING = {("models", "register"), ("envs", "build"), ("data", "create")}  # commands that may make a new workspace


class Context:
    """What commands share: the parsed global options and the workspace, opened on first use."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    @cached_property
    def ws(self) -> Workspace:
        from mltrain.runs.recovery import recover_orphans
        from mltrain.workspace import Workspace

        create = (self.args.group, getattr(self.args, "command", None)) in CREATING
        ws = Workspace.open(self.args.workspace, self.args.db_url, self.args.artifact_root, create=create)
        if getattr(self.args, "recover", True):  # runs whose driver died: Failed, their jobs stopped
            recover_orphans(ws)
        return ws

    @cached_property
    def models(self) -> ModelRegistry:
        from mltrain.registry.store import ModelRegistry

        return ModelRegistry.of(self.ws)


Handler = Callable[[argparse.Namespace, Context], int]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="mltrain",
        description="Manage the mltrain workspace. Train with `python -m mltrain [overrides]`.",
    )
    parser.add_argument(
        "--workspace", metavar="DIR", help="workspace folder (default: $MLTRAIN_WORKSPACE or ./.mltrain)"
    )
    parser.add_argument(
        "--db-url", metavar="URL", help="database URL (default: $MLTRAIN_DB_URL or SQLite in the workspace)"
    )
    parser.add_argument("--artifact-root", metavar="DIR", help="artifact folder (default: $MLTRAIN_ARTIFACT_ROOT)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    sub = parser.add_subparsers(dest="group", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"mltrain.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mltrain.cli.{name}":
                raise
            continue
        module.add_commands(sub, common)
    return parser


def _damaged_database(exc: Exception, args: argparse.Namespace) -> MltrainError | None:
    """A clear error for a database error raised mid-command (e.g. a damaged page), else None."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None or not isinstance(exc, sa_exc.DatabaseError) or isinstance(exc, sa_exc.OperationalError):
        return None
    from mltrain.workspace import WorkspaceSettings
    from mltrain.workspace.db import damaged

    settings = WorkspaceSettings.resolve(args.workspace, args.db_url, args.artifact_root)
    return damaged(settings.db_url.removeprefix("sqlite:///"), exc)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mltrain`` console script. A reader that stops early (``mltrain runs list |
    head -1``) ends the command quietly with status 0, as it ends ``git log | head -1``: the output
    was not wanted."""
    import os

    from mltrain.plugin import project_importable

    project_importable()
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe is met here, not in the interpreter's last flush
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # that last flush writes nowhere
        return 0
    return code


def _run(argv: list[str] | None) -> int:
    from mltrain.errors import MltrainError
    from mltrain.text import print_error

    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 2
    try:
        return handler(args, Context(args))
    except MltrainError as exc:
        print_error(exc)
        return exc.exit_code
    except BrokenPipeError:
        raise
    except Exception as exc:
        damaged = _damaged_database(exc, args)
        if damaged is None:
            raise
        print_error(damaged)
        return damaged.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
