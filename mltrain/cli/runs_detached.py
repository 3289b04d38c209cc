"""``mltrain runs wait ID`` and ``mltrain runs rerun ID [OVERRIDES]``."""

from __future__ import annotations

import argparse
import os
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
    from mltrain.runs.detach import follow_hint, record_queued, run_recorded, start
    from mltrain.runs.plan import check_config
    from mltrain.runs.rerun import RERUN_TAG, prepare_rerun

    ws = ctx.ws
    rerun = prepare_rerun(ws, args.run_id, list(args.overrides), _compose)
    check_config(rerun.config)
    tags = {RERUN_TAG: rerun.rerun_of}
    env_hash = ws.runs.get(rerun.rerun_of)["env_hash"] if rerun.env is not None else None
    if args.detach:
        started = start(ws, rerun.config, rerun.overrides, {}, tags=tags, env_hash=env_hash)
        print(follow_hint(started.run_id))
        return 0
    run_id, _ = record_queued(ws, rerun.config, rerun.overrides, os.getpid(), tags)
    print(f"run {run_id}: a rerun of {rerun.rerun_of}", file=sys.stderr)
    return run_recorded(ws, rerun.config, rerun.overrides, run_id, resolved=rerun.env)
