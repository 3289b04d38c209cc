"""``mltrain models ...``: the model registry."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.cli.output import fmt_bytes, fmt_time, print_json, print_kv, print_table
from mltrain.errors import RegistryError

FORMATS = ("joblib", "skops")  # mltrain/registry/formats.py (not imported: keeps --help fast)

if TYPE_CHECKING:
    from mltrain.cli.main import Context
    from mltrain.workspace.models import ModelVersion


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

    p = msub.add_parser(
        "register",
        parents=[common],
        help="register a file or folder as the next version of a model",
        description="Register a model file or folder: a local --path, or --run ID --path outputs/... (a path "
        "inside that run's folder, with lineage to the run and its environment). Nothing is loaded: for a "
        "joblib or skops file without --framework, the framework is ScikitLearn at the scikit-learn version of "
        "the run's environment (--run) or of the interpreter mltrain runs on (--path alone).",
    )
    p.add_argument("name", metavar="NAME", help="model name; each registration adds a version")
    p.add_argument("--path", "-p", help="the file or folder (with --run: relative to the run folder)")
    p.add_argument("--run", metavar="ID", help="register from this run (id or unique prefix)")
    p.add_argument("--format", choices=FORMATS, help="joblib or skops (default: from the file)")
    p.add_argument("--framework", help="e.g. ScikitLearn (default: see above)")
    p.add_argument("--framework-version", help="e.g. 1.7.2")
    p.add_argument("--description", help="free text")
    p.add_argument("--cpu", type=float, help="cores for a deployment (serving workers)")
    p.add_argument("--memory-gb", type=float, help="memory limit of a deployment, in GB")
    p.add_argument("--tags", nargs="+", default=[], metavar="K=V", help="tags, e.g. --tags stage=dev team=ml")
    p.add_argument("--properties", nargs="+", default=[], metavar="K=V", help="properties (like tags)")
    p.set_defaults(handler=cmd_register)

    p = msub.add_parser("alias", parents=[common], help="point NAME@ALIAS at a version (moving it from any other)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION", type=int)
    p.add_argument("alias", metavar="ALIAS", help="e.g. production; then NAME@production works everywhere")
    p.set_defaults(handler=cmd_alias)

    p = msub.add_parser("archive", parents=[common], help="hide a version from listings and NAME (latest)")
    p.add_argument("ref", metavar="NAME:VERSION")
    p.add_argument("--restore", action="store_true", help="un-archive it")
    p.set_defaults(handler=cmd_archive)


def model_json(mv: ModelVersion) -> dict[str, Any]:
    from mltrain.views.models import model_version_json

    return model_version_json(mv)


def _format_line(mv: ModelVersion) -> str:
    from mltrain.registry.formats import is_code_executing

    if is_code_executing(mv.format):
        return f"{mv.format} (code-executing: loading runs code from the file; trusted only knowingly)"
    return f"{mv.format} (not code-executing: only trusted types load)"


def trust_note(mv: ModelVersion) -> str | None:
    """The warning printed when a pickle-based model is registered, else None."""
    from mltrain.registry.formats import TRUST_NOTE, is_code_executing

    if not is_code_executing(mv.format):
        return None
    return "note: " + TRUST_NOTE.format(ref=mv.ref, fmt=mv.format)


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


def _resources(mv: ModelVersion) -> str | None:
    parts = [f"cpu {mv.cpu:g}" if mv.cpu else "", f"memory {mv.memory_gb:g} GB" if mv.memory_gb else ""]
    return ", ".join(p for p in parts if p) or None


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.views.models import model_detail

    mv = ctx.ws.models.get(args.ref)
    detail = model_detail(ctx.ws, mv)
    if args.json:
        print_json(detail)
        return 0
    lineage = detail["lineage"]
    print_kv(
        [
            ("model", f"{mv.name} version {mv.version}" + (" (archived)" if mv.archived else "")),
            ("aliases", ", ".join(mv.aliases) or None),
            ("path", mv.path),
            ("format", _format_line(mv)),
            ("framework", f"{mv.framework} {mv.framework_version or ''}".strip() if mv.framework else None),
            ("sha256", mv.sha256),
            ("size", fmt_bytes(detail["size"])),
            ("resources", _resources(mv)),
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
        from mltrain.cli.lineage import print_run_data

        print_run_data({"inputs": lineage["data"]}, indent="  ")  # the data its run read
    return 0


def cmd_download(args: argparse.Namespace, ctx: Context) -> int:
    path = ctx.models.download(args.ref, Path(args.dest))
    print(f"{args.ref} downloaded to {path} (sha256 verified)")
    return 0


def parse_pairs(items: list[str], option: str) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; a clear error for an item without ``=``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RegistryError(f"{option} {item!r} is not KEY=VALUE", hint=f"write e.g. {option} stage=dev")
        out[key] = value
    return out


def cmd_register(args: argparse.Namespace, ctx: Context) -> int:
    request = {
        "format": args.format,
        "framework": args.framework,
        "framework_version": args.framework_version,
        "description": args.description,
        "cpu": args.cpu,
        "memory_gb": args.memory_gb,
        "tags": parse_pairs(args.tags, "--tags"),
        "properties": parse_pairs(args.properties, "--properties"),
    }
    for option in ("cpu", "memory_gb"):
        if request[option] is not None and request[option] <= 0:
            raise RegistryError(f"--{option.replace('_', '-')} must be positive, got {request[option]}")
    if args.run:
        from mltrain.registry.from_run import register_from_run_id

        mv = register_from_run_id(ctx.ws, args.run, {"name": args.name, "path": args.path, **request})
    else:
        if not args.path:
            raise RegistryError("give the model with --path FILE (or --run ID --path outputs/...)")
        from mltrain.registry.from_file import register_file

        mv = register_file(ctx.ws, args.name, args.path, **request)
    note = trust_note(mv)
    if note:
        print(f"mltrain: {note}", file=sys.stderr)
    if args.json:
        print_json(model_json(mv))
        return 0
    framework = f" ({' '.join(x for x in (mv.framework, mv.framework_version) if x)})" if mv.framework else ""
    source = f" from run {mv.run_id}" if mv.run_id else ""
    print(f"registered {mv.name} version {mv.version}{framework}{source}, sha256 {mv.sha256[:12]}")
    return 0


def cmd_alias(args: argparse.Namespace, ctx: Context) -> int:
    mv = ctx.ws.models.set_alias(args.name, args.version, args.alias)
    if args.json:
        print_json(model_json(mv))
        return 0
    print(f"{mv.name}@{args.alias} -> version {mv.version}")
    return 0


def cmd_archive(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.workspace.models import parse_ref

    name, version, _alias = parse_ref(args.ref)
    if version is None:
        raise RegistryError(f"archive needs a version: {args.ref!r}", hint=f"write {name}:VERSION")
    mv = ctx.ws.models.set_archived(args.ref, archived=not args.restore)
    if args.json:
        print_json(model_json(mv))
        return 0
    print(f"{mv.ref} {'archived' if mv.archived else 'restored'}")
    return 0
