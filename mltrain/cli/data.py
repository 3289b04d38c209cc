"""``mltrain data ...``: data assets (versions, manifests, datastores, lineage)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from mltrain.cli.models import parse_pairs
from mltrain.cli.output import fmt_bytes, fmt_time, print_json, print_kv, print_table

if TYPE_CHECKING:
    from mltrain.cli.main import Context
    from mltrain.data.progress import Progress
    from mltrain.workspace.data import DataVersion

TYPES = ("uri_file", "uri_folder")  # mltrain.workspace.data.TYPES (not imported: keeps --help fast)
SHOWN_FILES = 20  # files listed by `data show` (all with --json)


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    data = sub.add_parser("data", help="data assets: versioned files and folders")
    dsub = data.add_subparsers(dest="command", metavar="ACTION")
    dsub.required = True

    p = dsub.add_parser(
        "create",
        parents=[common],
        help="record a new version of a data asset from a local file or folder, or a URI",
        description="A local file or folder is stored in the datastore (default: the workspace's, by sha256, so "
        "identical files are stored once). A URI (s3://, az://, gs://, https://, file://) stays where it is and is "
        "recorded with every file's size and checksum. Datastore options may follow the datastore's name, e.g. "
        "--datastore s3 datastore.url=s3://bucket/prefix.",
    )
    p.add_argument("name", metavar="NAME", help="asset name; each create adds a version (1, 2, ...)")
    p.add_argument("source", metavar="PATH_OR_URI")
    p.add_argument("--type", choices=TYPES, help="default: from the source (a file or a folder)")
    p.add_argument("--description", help="free text")
    p.add_argument("--tag", action="append", default=[], metavar="K=V", help="a tag (repeat for more)")
    p.add_argument(
        "--datastore",
        nargs="+",
        metavar=("NAME", "OVERRIDE"),
        help="conf/datastore/NAME.yaml, then options as datastore.KEY=VALUE (default: workspace for a local path; "
        "s3, azure, gcs or https for a URI)",
    )
    p.set_defaults(handler=cmd_create)

    p = dsub.add_parser("list", parents=[common], help="the latest version of every asset, or every version of one")
    p.add_argument("name", nargs="?", help="list every version of this asset")
    p.add_argument("--all", action="store_true", help="include archived versions")
    p.set_defaults(handler=cmd_list)

    p = dsub.add_parser("show", parents=[common], help="a version: manifest summary, datastore, lineage")
    p.add_argument("ref", metavar="NAME[:VERSION|@ALIAS]")
    p.set_defaults(handler=cmd_show)

    p = dsub.add_parser("download", parents=[common], help="write a version's files into a folder, verified")
    p.add_argument("ref", metavar="NAME[:VERSION|@ALIAS]")
    p.add_argument("dest", metavar="DEST", help="destination folder (created if needed)")
    p.set_defaults(handler=cmd_download)

    p = dsub.add_parser("check", parents=[common], help="re-read a version's source: what changed, went, or came")
    p.add_argument("ref", metavar="NAME[:VERSION|@ALIAS]")
    p.set_defaults(handler=cmd_check)

    p = dsub.add_parser("archive", parents=[common], help="hide a version from listings and from data:NAME")
    p.add_argument("ref", metavar="NAME:VERSION")
    p.add_argument("--restore", action="store_true", help="un-archive it")
    p.set_defaults(handler=cmd_archive)

    p = dsub.add_parser("alias", parents=[common], help="point data:NAME@ALIAS at a version (moving it)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION", type=int)
    p.add_argument("alias", metavar="ALIAS", help="e.g. prod; then data:NAME@prod works everywhere")
    p.set_defaults(handler=cmd_alias)


def version_json(dv: DataVersion, manifest: bool = True) -> dict[str, Any]:
    data = asdict(dv)
    data["ref"] = dv.ref
    data["manifest"] = [asdict(e) for e in dv.manifest]
    if not manifest:
        data.pop("manifest")
    return data


def _progress_printer(verb: str) -> Any:
    def report(p: Progress) -> None:
        total = f" of {fmt_bytes(p.total_bytes)}" if p.total_bytes is not None else ""
        print(
            f"mltrain: {verb} {p.files_done}/{p.total_files} files, {fmt_bytes(p.bytes_done)}{total}",
            file=sys.stderr,
            flush=True,
        )

    return report


def cmd_create(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.data.configs import datastore_node
    from mltrain.data.create import create, default_datastore

    chosen, overrides = (args.datastore[0], args.datastore[1:]) if args.datastore else (None, [])
    name = chosen or default_datastore(args.source)
    node = datastore_node(name, overrides)
    dv = create(
        ctx.ws,
        args.name,
        args.source,
        type=args.type,
        description=args.description,
        tags=parse_pairs(args.tag, "--tag"),
        datastore=name,
        datastore_config=node,
        report=_progress_printer("stored" if "://" not in args.source else "recorded"),
    )
    if args.json:
        print_json(version_json(dv, manifest=False))
        return 0
    where = f"stored in datastore {dv.datastore}" if dv.stored else f"referenced at {dv.source}"
    print(
        f"created {dv.ref}: {dv.file_count} file{'s' if dv.file_count != 1 else ''}, {fmt_bytes(dv.size)}, "
        f"{where}, digest {dv.digest[:12]}"
    )
    return 0


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    versions = ctx.ws.data.list(args.name, include_archived=args.all)
    if args.json:
        print_json([version_json(v, manifest=False) for v in versions])
        return 0
    rows = [
        (
            v.name,
            v.version,
            v.type,
            v.file_count,
            fmt_bytes(v.size),
            v.datastore if v.stored else f"{v.datastore} (reference)",
            ",".join(v.aliases) or "-",
            fmt_time(v.created_at),
            "archived" if v.archived else "",
        )
        for v in versions
    ]
    print_table(
        rows, ["NAME", "VERSION", "TYPE", "FILES", "SIZE", "DATASTORE", "ALIASES", "CREATED", ""], "no data assets"
    )
    return 0


def _resolve(ctx: Context, ref: str) -> DataVersion:
    from mltrain.data.refs import resolve

    return resolve(ctx.ws, ref)


def _lineage(ctx: Context, dv: DataVersion) -> dict[str, Any]:
    producer = None
    if dv.producer_run_id:
        run = ctx.ws.runs.get(dv.producer_run_id)
        producer = {"run": run["id"], "experiment": run["experiment"], "status": run["status"]}
    links = ctx.ws.data.links(version_id=dv.id)
    return {
        "produced_by": producer,
        "read_by": [{"run": x.run_id, "input": x.name, "mode": x.mode} for x in links if x.direction == "input"],
        "written_by": [{"run": x.run_id, "output": x.name} for x in links if x.direction == "output"],
    }


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    dv = _resolve(ctx, args.ref)
    lineage = _lineage(ctx, dv)
    if args.json:
        print_json({**version_json(dv), "lineage": lineage})
        return 0
    kept = "stored by sha256" if dv.stored else "referenced where it is"
    print_kv(
        [
            ("data asset", f"{dv.name} version {dv.version}" + (" (archived)" if dv.archived else "")),
            ("reference", dv.ref),
            ("aliases", ", ".join(dv.aliases) or None),
            ("type", dv.type),
            ("source", dv.source),
            ("datastore", f"{dv.datastore} ({dv.datastore_kind}, {kept})"),
            ("size", f"{fmt_bytes(dv.size)} in {dv.file_count} file{'s' if dv.file_count != 1 else ''}"),
            ("digest", f"sha256:{dv.digest}"),
            ("description", dv.description),
            ("tags", ", ".join(f"{k}={v}" for k, v in dv.tags.items()) or None),
            ("created", fmt_time(dv.created_at)),
        ]
    )
    print(f"\nFiles ({dv.file_count}):")
    rows = [
        (e.relpath, fmt_bytes(e.size), f"sha256 {e.sha256[:12]}" if e.sha256 else e.checksum)
        for e in dv.manifest[:SHOWN_FILES]
    ]
    print_table(rows, ["PATH", "SIZE", "CONTENT"])
    if dv.file_count > SHOWN_FILES:
        print(f"... and {dv.file_count - SHOWN_FILES} more (all with --json)")
    print("\nLineage:")
    produced = lineage["produced_by"]
    producer = f"run {produced['run']} ({produced['experiment']}, {produced['status']})" if produced else None
    read_by = ", ".join(f"{r['run']} ({r['input']}, {r['mode'] or '-'})" for r in lineage["read_by"])
    print_kv(
        [
            ("  produced by", producer),
            ("  read by", read_by or "(no runs yet)"),
        ]
    )
    return 0


def cmd_download(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.data.transfer import download

    dv = _resolve(ctx, args.ref)
    path = download(ctx.ws, dv, args.dest, report=_progress_printer("downloaded"))
    if args.json:
        print_json({"ref": dv.ref, "path": str(path), "files": dv.file_count, "size": dv.size, "digest": dv.digest})
        return 0
    verified = "sha256 verified" if all(e.sha256 for e in dv.manifest) else "size and store checksum verified"
    print(f"{dv.ref} downloaded to {path} ({dv.file_count} files, {fmt_bytes(dv.size)}, {verified})")
    return 0


def cmd_check(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.data.transfer import check

    dv = _resolve(ctx, args.ref)
    report = check(ctx.ws, dv, report=_progress_printer("checked"))
    if args.json:
        print_json(
            {
                "ref": dv.ref,
                "source": dv.source,
                "ok": report.ok,
                "changed": list(report.changed),
                "missing": list(report.missing),
                "new": list(report.new),
                "missing_blobs": list(report.missing_blobs),
            }
        )
        return 0 if report.ok else 1
    if report.ok:
        print(f"{dv.ref} matches its source {dv.source} ({dv.file_count} files)")
        return 0
    print(f"{dv.ref} no longer matches its source {dv.source}:")
    for label, paths in (
        ("changed", report.changed),
        ("missing", report.missing),
        ("new", report.new),
        ("missing from the datastore", report.missing_blobs),
    ):
        for path in paths:
            print(f"  {label + ':':<28}{path}")
    print(f"create a new version with `mltrain data create {dv.name} {dv.source}`")
    return 1


def cmd_archive(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.data.refs import parse_ref
    from mltrain.errors import DataError

    name, version, _alias = parse_ref(args.ref)
    if version is None:
        raise DataError(f"archive needs a version: {args.ref!r}", hint=f"write {name}:VERSION")
    dv = ctx.ws.data.set_archived(name, version, archived=not args.restore)
    if args.json:
        print_json(version_json(dv, manifest=False))
        return 0
    print(f"{dv.ref} {'archived' if dv.archived else 'restored'}")
    return 0


def cmd_alias(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.data.refs import parse_ref

    parse_ref(f"{args.name}@{args.alias}")
    dv = ctx.ws.data.set_alias(args.name, args.version, args.alias)
    if args.json:
        print_json(version_json(dv, manifest=False))
        return 0
    print(f"data:{dv.name}@{args.alias} -> version {dv.version}")
    return 0
