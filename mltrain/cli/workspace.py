"""``mltrain workspace ...``: integrity check and online backup of the workspace."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mltrain.cli.output import print_json
from mltrain.text import escape_controls

if TYPE_CHECKING:
    from mltrain.cli.main import Context

SHOWN = 20  # items listed per kind of problem


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    wsp = sub.add_parser("workspace", help="check and back up the workspace")
    wsub = wsp.add_subparsers(dest="command", metavar="ACTION")
    wsub.required = True
    p = wsub.add_parser(
        "check",
        parents=[common],
        help="database integrity, every blob's sha256, blobs records refer to, runs whose folder is missing",
    )
    p.set_defaults(handler=cmd_check)
    p = wsub.add_parser("backup", parents=[common], help="a consistent copy of the database and the artifact blobs")
    p.add_argument("dest", metavar="DEST", help="a new or empty folder (then usable as --workspace DEST)")
    p.set_defaults(handler=cmd_backup)


def _listing(items: list[str]) -> str:
    more = f" (and {len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return escape_controls(", ".join(items[:SHOWN])) + more  # names from records: escaped


def cmd_check(args: argparse.Namespace, ctx: Context) -> int:
    from dataclasses import asdict

    from mltrain.workspace.maintenance import check_workspace

    report = check_workspace(ctx.ws)
    if args.json:
        print_json({**asdict(report), "ok": report.ok})
        return 0 if report.ok else 1
    print(f"database:  {'ok' if not report.database else 'DAMAGED: ' + _listing(report.database)}")
    print(
        f"blobs:     {report.blobs_checked} checked, {len(report.bad_blobs)} corrupted, "
        f"{len(report.missing_blobs)} missing"
    )
    if report.bad_blobs:
        print(f"  corrupted (content differs from its sha256): {_listing(report.bad_blobs)}")
    if report.missing_blobs:
        print(f"  missing (named by a record): {_listing(report.missing_blobs)}")
    if report.bad_names:
        print(f"  not a sha256 (a record names a blob with it; refused wherever read): {_listing(report.bad_names)}")
    print(f"runs:      {report.runs_checked} checked, {len(report.missing_run_dirs)} without their folder")
    if report.missing_run_dirs:
        print(f"  folder gone (their collected artifacts are kept): {_listing(report.missing_run_dirs)}")
    if not report.ok:
        print("problems found: restore the database or the listed blobs from a backup (mltrain workspace backup)")
        return 1
    return 0


def cmd_backup(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.workspace.maintenance import backup_workspace

    report = backup_workspace(ctx.ws, args.dest)
    if args.json:
        print_json({"database": str(report.database), "blobs": report.blobs_copied})
        return 0
    print(f"backed up the database to {report.database} and {report.blobs_copied} blobs to {args.dest}/artifacts")
    print(f"use it with: mltrain --workspace {args.dest} runs list")
    return 0
