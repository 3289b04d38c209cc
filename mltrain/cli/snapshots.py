"""``mltrain snapshots ...``: inspect and restore the source snapshots of runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.cli.output import fmt_bytes, print_json, print_table

if TYPE_CHECKING:
    from mltrain.cli.main import Context


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    snaps = sub.add_parser("snapshots", help="source snapshots of runs")
    ssub = snaps.add_subparsers(dest="command", metavar="ACTION")
    ssub.required = True
    p = ssub.add_parser("show", parents=[common], help="the files of a snapshot")
    p.add_argument("snapshot_id", metavar="ID", help="snapshot id (or a unique prefix), see `mltrain runs show`")
    p.set_defaults(handler=cmd_show)
    p = ssub.add_parser("restore", help="write the files of a snapshot into a folder")
    p.add_argument("snapshot_id", metavar="ID")
    p.add_argument("dest", metavar="DEST", help="destination folder")
    p.set_defaults(handler=cmd_restore)


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    snap = ctx.ws.snapshots.get(args.snapshot_id)
    if args.json:
        print_json(
            {
                "id": snap.id,
                "source_dir": snap.source_dir,
                "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in snap.files],
            }
        )
        return 0
    print(f"snapshot {snap.id} of {snap.source_dir}: {len(snap.files)} files, {fmt_bytes(snap.total_bytes)}")
    print_table([(f.path, fmt_bytes(f.size), f.sha256[:12]) for f in snap.files], ["PATH", "SIZE", "SHA256"])
    return 0


def cmd_restore(args: argparse.Namespace, ctx: Context) -> int:
    snap = ctx.ws.snapshots.restore(args.snapshot_id, Path(args.dest))
    print(f"restored snapshot {snap.id[:12]} ({len(snap.files)} files) into {args.dest}")
    return 0
