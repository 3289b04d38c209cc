"""``mltrain models ...``: the model registry."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.cli.output import fmt_bytes, fmt_time, print_json, print_kv, print_table

if TYPE_CHECKING:
    from mltrain.cli.main import Context
    from mltrain.registry.store import ModelVersion


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    models = sub.add_parser("models", help="registered models")
    msub = models.add_subparsers(dest="command", metavar="ACTION")
    msub.required = True

    p = msub.add_parser("list", parents=[common], help="the latest version of every model, or every version of one")
    p.add_argument("name", nargs="?", help="list every version of this model")
    p.add_argument("--all", action="store_true", help="include archived versions")
    p.set_defaults(handler=cmd_list)

    p = msub.add_parser("show", parents=[common], help="a model version with its lineage")
    p.add_argument("ref", metavar="NAME[:VERSION|@ALIAS]")
    p.set_defaults(handler=cmd_show)

    p = msub.add_parser("download", help="the model's file(s), checked against their sha256")
    p.add_argument("ref", metavar="NAME[:VERSION|@ALIAS]")
    p.add_argument("--dest", "-o", default=".", help="destination folder (default: .)")
    p.set_defaults(handler=cmd_download)


def model_json(mv: ModelVersion) -> dict[str, Any]:
    data = asdict(mv)
    data.pop("id", None)
    return data


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    versions = ctx.ws.models.list(args.name, include_archived=args.all)
    if args.json:
        print_json([model_json(m) for m in versions])
        return 0
    rows = [
        (
            m.name,
            m.version,
            m.format,
            f"{m.framework or '-'} {m.framework_version or ''}".strip(),
            ",".join(m.aliases) or "-",
            m.run_id,
            fmt_time(m.created_at),
            "archived" if m.archived else "",
        )
        for m in versions
    ]
    print_table(rows, ["NAME", "VERSION", "FORMAT", "FRAMEWORK", "ALIASES", "RUN", "CREATED", ""], "no models")
    return 0


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    ws = ctx.ws
    mv = ws.models.get(args.ref)
    lineage: dict[str, Any] = {}
    if mv.run_id:
        run = ws.runs.get(mv.run_id)
        lineage = {
            "run": run["id"],
            "experiment": run["experiment"],
            "status": run["status"],
            "metrics": ws.metrics.summary(run["id"]),
            "environment": run["env_name"],
            "environment_hash": run["env_hash"],
            "snapshot": run["snapshot_id"],
            "git_commit": run["git_commit"],
        }
    if args.json:
        print_json({**model_json(mv), "lineage": lineage})
        return 0
    print_kv(
        [
            ("model", f"{mv.name} version {mv.version}" + (" (archived)" if mv.archived else "")),
            ("aliases", ", ".join(mv.aliases) or None),
            ("path", mv.path),
            ("format", mv.format),
            ("framework", f"{mv.framework} {mv.framework_version or ''}".strip() if mv.framework else None),
            ("sha256", mv.sha256),
            ("size", fmt_bytes(sum(f["size"] for f in mv.files))),
            ("resources", f"cpu {mv.cpu}, memory {mv.memory_gb} GB" if mv.cpu or mv.memory_gb else None),
            ("description", mv.description),
            ("tags", ", ".join(f"{k}={v}" for k, v in mv.tags.items()) or None),
            ("properties", ", ".join(f"{k}={v}" for k, v in mv.properties.items()) or None),
            ("created", fmt_time(mv.created_at)),
        ]
    )
    if lineage:
        print("\nLineage:")
        print_kv(
            [
                ("  run", f"{lineage['run']} ({lineage['experiment']}, {lineage['status']})"),
                ("  environment", f"{lineage['environment']} ({(lineage['environment_hash'] or '')[:12]})"),
                ("  snapshot", lineage["snapshot"]),
                ("  git commit", lineage["git_commit"]),
                ("  metrics", "  ".join(f"{k}={v}" for k, v in lineage["metrics"].items()) or None),
            ]
        )
    return 0


def cmd_download(args: argparse.Namespace, ctx: Context) -> int:
    path = ctx.ws.models.download(args.ref, Path(args.dest))
    print(f"{args.ref} downloaded to {path} (sha256 verified)")
    return 0
