"""``mltrain snapshots ...``: inspect and restore the source snapshots of runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.cli.output import fmt_bytes, print_json, print_table
from mltrain.text import escape_controls

if TYPE_CHECKING:
    from mltrain.cli.main import Context


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    snaps = sub.add_parser("snapshots", help="source snapshots of runs")
    ssub = snaps.add_subparsers(dest="command", metavar="ACTION")
    ssub.required = True
    p = ssub.add_parser("show", parents=[common], help="the files of a snapshot")
    p.add_argument("snapshot_id", metavar="ID", help="snapshot id (or a unique prefix), see `mltrain runs show`")
    p.set_defaults(handler=cmd_show)
    p = ssub.add_parser(
        "preview", parents=[common], help="what a run of a folder would snapshot: files included and left out, and why"
    )
    p.add_argument("source_dir", metavar="DIR", nargs="?", default=".", help="the source folder (default: .)")
    p.add_argument("--included", action="store_true", help="only the files included")
    p.add_argument("--excluded", action="store_true", help="only what is left out")
    p.set_defaults(handler=cmd_preview)
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
    print(
        escape_controls(
            f"snapshot {snap.id} of {snap.source_dir}: {len(snap.files)} files, {fmt_bytes(snap.total_bytes)}"
        )
    )
    print_table([(f.path, fmt_bytes(f.size), f.sha256[:12]) for f in snap.files], ["PATH", "SIZE", "SHA256"])
    return 0


def cmd_restore(args: argparse.Namespace, ctx: Context) -> int:
    snap = ctx.ws.snapshots.restore(args.snapshot_id, Path(args.dest))
    print(f"restored snapshot {snap.id[:12]} ({len(snap.files)} files) into {args.dest}")
    return 0


def cmd_preview(args: argparse.Namespace, ctx: Context) -> int:
    """Included files and left-out files/folders of DIR with sizes and rules; creates nothing."""
    from mltrain.errors import SnapshotError
    from mltrain.workspace import WorkspaceSettings
    from mltrain.workspace.snapshots import scan

    source = Path(args.source_dir).resolve()
    if not source.is_dir():
        raise SnapshotError(f"{source} is not a folder", hint="give the job's source folder (job.source_dir)")
    settings = WorkspaceSettings.resolve(args.workspace, args.db_url, args.artifact_root)
    entries = [e for _, _, e in scan(source, exclude=settings.local_folders, report=True)]
    included = [e for e in entries if e.rule is None]
    left_out = [e for e in entries if e.rule is not None]
    if args.json:
        print_json(
            {
                "source_dir": str(source),
                "included": [{"path": e.path, "size": e.size} for e in included],
                "excluded": [{"path": e.path, "size": e.size, "files": e.files, "rule": e.rule} for e in left_out],
            }
        )
        return 0
    if not args.excluded:
        total = sum(e.size for e in included)
        print(f"Included: {len(included)} files, {fmt_bytes(total)} (limits: job.snapshot.max_files, max_size_mb)")
        print_table([(e.path, fmt_bytes(e.size)) for e in included], ["PATH", "SIZE"], "(nothing)")
    if not args.included:
        if not args.excluded:
            print()
        print(f"Left out: {sum(e.files for e in left_out)} files, {fmt_bytes(sum(e.size for e in left_out))}")
        print_table(
            [(e.path, fmt_bytes(e.size), e.files, e.rule) for e in left_out],
            ["PATH", "SIZE", "FILES", "RULE"],
            "(nothing)",
        )
    return 0
