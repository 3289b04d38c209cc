"""``mltrain runs wait ID`` and ``mltrain runs rerun ID [OVERRIDES]``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mltrain.cli.main import Context

TIMEOUT_EXIT = 3


def cmd_wait(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.runs.detach import exit_code, wait_for
    from mltrain.text import escape_controls

    run = ctx.ws.runs.get(args.run_id)
    try:
        run = wait_for(ctx.ws, run["id"], timeout=args.timeout)
    except TimeoutError as exc:
        print(f"mltrain: {exc}", file=sys.stderr)
        return TIMEOUT_EXIT
    line = f"run {run['id']} {run['status']}"
    if run.get("error"):
        line += f": {run['error'].splitlines()[0]}"
    print(escape_controls(line))
    return exit_code(run)


def _compose(overrides: list[str]) -> dict[str, Any]:
    from mltrain.config.compose import compose_job

    return compose_job(overrides).config


def cmd_rerun(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.runs.detach import follow_hint
    from mltrain.runs.rerun import prepare_rerun, run_rerun, start_rerun

    rerun = prepare_rerun(ctx.ws, args.run_id, list(args.overrides), _compose)
    if args.detach:
        print(follow_hint(start_rerun(ctx.ws, rerun)))
        return 0
    print(f"[mltrain] a rerun of {rerun.rerun_of}", flush=True)
    return run_rerun(ctx.ws, rerun)
