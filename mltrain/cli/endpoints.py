"""``mltrain endpoints ...``: deploy registered models as web services and manage the endpoints."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.cli.output import fmt_time, print_json, print_kv, print_table
from mltrain.text import escape_controls

if TYPE_CHECKING:
    from mltrain.cli.main import Context
    from mltrain.deploy.base import DeployTarget

SLOTS = ("primary", "secondary")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    eps = sub.add_parser("endpoints", help="deploy models as web services; list, inspect and delete endpoints")
    esub = eps.add_subparsers(dest="command", metavar="ACTION")
    esub.required = True

    p = esub.add_parser(
        "deploy",
        parents=[common],
        help="serve a registered model version as an authenticated web service",
        description="Deploy NAME[:VERSION|@ALIAS] with the deploy target --target (conf/deploy/TARGET.yaml, "
        "mltrain's or ./conf's). The server runs in the model's own environment (its scikit-learn version) "
        "plus the server's packages, built once and cached. cpu and memory_gb default to the model's "
        "registration. Deploying to an existing endpoint name replaces its model and keeps its keys.",
    )
    p.add_argument("ref", metavar="NAME[:VERSION|@ALIAS]", help="the model version (NAME alone: the latest)")
    p.add_argument("--target", "-t", default="local", help="local, docker or a target of ./conf/deploy (default local)")
    p.add_argument("--name", help="endpoint name (default: the model name)")
    p.add_argument("--cpu", type=float, help="cores: server workers (rounded, at least 1); docker: CPU limit too")
    p.add_argument("--memory-gb", type=float, help="memory limit in GB (docker: container limit; local: watchdog)")
    p.add_argument("--no-auth", action="store_true", help="serve without keys (default: key authentication on)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 0: a free one, kept on re-deploy)")
    p.add_argument("--max-body-mb", type=float, help="largest request body accepted (default 1)")
    p.add_argument("--trusted-types", nargs="+", metavar="TYPE", help="skops models: extra type names to trust")
    p.add_argument("--base-url", help="docker: the engine address (default: DOCKER_HOST or the default socket)")
    p.add_argument("--base-image", help="docker: FROM image of the serving environment")
    p.add_argument("--set", dest="options", nargs="+", default=[], metavar="KEY=VALUE", help="any other option")
    p.set_defaults(handler=cmd_deploy)

    p = esub.add_parser("list", parents=[common], help="endpoints with their model, target, URI and live state")
    p.set_defaults(handler=cmd_list)

    p = esub.add_parser("show", parents=[common], help="an endpoint: state, model, URIs, keys, resources, files")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=cmd_show)

    p = esub.add_parser("logs", help="the server's output")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the server stops (Ctrl-C ends)")
    p.set_defaults(handler=cmd_logs)

    p = esub.add_parser(
        "keys",
        parents=[common],
        help="show the endpoint's key fingerprints, or regenerate a key",
        description="Keys are stored hashed: they are shown in full only when made (deploy, --regenerate). "
        "A regenerated key replaces the old one at once, without restarting the server.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--regenerate", choices=SLOTS, help="make a new primary or secondary key (the old one stops working)"
    )
    p.set_defaults(handler=cmd_keys)

    p = esub.add_parser("delete", parents=[common], help="stop the server, free its port, remove the endpoint")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--missing-ok", action="store_true", help="succeed when there is no such endpoint")
    p.add_argument("--force", action="store_true", help="remove the record even when the server cannot be stopped")
    p.set_defaults(handler=cmd_delete)


# -- deploy -----------------------------------------------------------------------------------------
def target_from_args(args: argparse.Namespace) -> DeployTarget:
    import yaml

    from mltrain.config.deploy_targets import deploy_target
    from mltrain.errors import ConfigError

    options: dict[str, Any] = {}
    for item in args.options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r} is not KEY=VALUE", hint="e.g. --set ready_timeout_s=600")
        options[key] = yaml.safe_load(value)
    flags = {
        "name": args.name,
        "cpu": args.cpu,
        "memory_gb": args.memory_gb,
        "host": args.host,
        "port": args.port,
        "max_body_mb": args.max_body_mb,
        "trusted_types": args.trusted_types,
        "base_url": args.base_url,
        "base_image": args.base_image,
    }
    options.update({k: v for k, v in flags.items() if v is not None})
    if args.no_auth:
        options["auth"] = False
    return deploy_target(args.target, options)


def cmd_deploy(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.deploy.service import deploy

    target = target_from_args(args)
    mv = ctx.ws.models.get(args.ref)
    info = deploy(ctx.ws, mv, target)
    if args.json:
        print_json(info)
        return 0
    print_deployed(info)
    return 0


def print_deployed(info: dict[str, Any]) -> None:
    name = info["name"]
    replaced = f", replacing {info['replaced']}" if info.get("replaced") else ""
    print(
        f"endpoint {name}: {info['state']} at {info['uri']} (model {info['model']}{replaced}; {info['target']}, "
        f"{info['workers']} worker(s)) in {info['duration_s']:.1f} s"
    )
    print(f"  scoring: POST {info['scoring_uri']}")
    print(f"  swagger: {info['swagger_uri']}")
    if not info["auth"]:
        print("  auth:    off (no key needed)")
        return
    if info["keys"]:
        for slot, key in info["keys"].items():
            print(f"  {slot} key: {key}")
        print("  keys are shown only now: keep them; `mltrain endpoints keys NAME --regenerate primary` replaces one")
    else:
        print(f"  keys:    unchanged (`mltrain endpoints keys {name}`)")
    print(
        f"  try:     curl -H 'Authorization: Bearer KEY' -H 'Content-Type: application/json' "
        f"-d '{{\"data\": [[...]]}}' {info['scoring_uri']}"
    )


# -- list / show / logs -----------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.views.endpoints import endpoint_view

    items = [endpoint_view(ctx.ws, r) for r in ctx.ws.endpoints.list()]
    if args.json:
        print_json(items)
        return 0
    rows = [(e["name"], e["model"], e["target"], e.get("uri") or "-", e["state"]) for e in items]
    print_table(rows, ["NAME", "MODEL", "TARGET", "URI", "STATE"], "no endpoints")
    return 0


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.deploy.base import LOG_FILE
    from mltrain.views.endpoints import endpoint_view

    rec = ctx.ws.endpoints.get(args.name)
    data = endpoint_view(ctx.ws, rec)
    if args.json:
        print_json(data)
        return 0
    memory = f", memory {rec.memory_gb:g} GB" if rec.memory_gb else ", no memory limit"
    where = f"container {str(rec.container_id)[:12]}" if rec.container_id else f"pid {rec.pid}"
    print_kv(
        [
            ("endpoint", rec.name),
            ("state", data["state"] + (f" ({data['reason']})" if data["reason"] else "")),
            ("model", rec.model),
            ("target", rec.target + (f" ({rec.base_url})" if rec.base_url else "")),
            ("uri", rec.uri),
            ("scoring", f"POST {data['scoring_uri']}" if rec.uri else None),
            ("swagger", data.get("swagger_uri")),
            ("auth", "key (Authorization: Bearer KEY)" if rec.auth else "off"),
            ("keys", ", ".join(f"{s} {f}" for s, f in data["keys"].items()) or None),
            ("resources", f"cpu {rec.cpu or 0:g} ({rec.workers} worker(s)){memory}"),
            ("environment", f"{rec.env_location} ({str(rec.env_hash or '')[:12]})"),
            ("server", where),
            ("folder", rec.folder),
            (
                "log",
                str(Path(str(rec.folder)) / LOG_FILE)
                if rec.target == "local"
                else "docker logs (mltrain endpoints logs)",
            ),
            ("created", fmt_time(rec.created_at)),
            ("updated", fmt_time(rec.updated_at)),
        ]
    )
    return 0


def cmd_logs(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.deploy.targets import target_for_record

    rec = ctx.ws.endpoints.get(args.name)
    target_for_record(rec).logs(rec, args.follow)
    return 0


# -- keys / delete ------------------------------------------------------------------------------------
def cmd_keys(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.deploy.keys import fingerprint
    from mltrain.deploy.service import regenerate_key

    if args.regenerate:
        key = regenerate_key(ctx.ws, args.name, args.regenerate)
        if args.json:
            print_json({"name": args.name, "slot": args.regenerate, "key": key})
            return 0
        print(f"new {args.regenerate} key of endpoint {args.name}: {key}")
        print("it is shown only now; the old one no longer works (the server picks the change up within a second)")
        return 0
    rec = ctx.ws.endpoints.get(args.name)
    keys = {s: fingerprint(rec.key_digest(s)) for s in SLOTS if rec.key_digest(s)}
    if args.json:
        print_json({"name": rec.name, "auth": rec.auth, "keys": keys, "updated_at": rec.keys_updated_at})
        return 0
    if not rec.auth:
        print(f"endpoint {rec.name} serves without authentication (deployed with auth: false)")
        return 0
    rows = [(slot, fp) for slot, fp in keys.items()]
    print_table(rows, ["KEY", "FINGERPRINT"], "no keys")
    print(
        f"\nKeys are stored hashed and shown only when made (last change {fmt_time(rec.keys_updated_at)}); "
        f"`mltrain endpoints keys {rec.name} --regenerate primary|secondary` makes a new one.",
        file=sys.stdout,
    )
    return 0


def cmd_delete(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.deploy.service import delete_endpoint
    from mltrain.errors import NotFoundError

    if ctx.ws.endpoints.find(args.name) is None:
        err = NotFoundError(
            f"no endpoint {args.name!r} in this workspace (nothing to delete)",
            hint="`mltrain endpoints list` shows the endpoints; --missing-ok makes this a success for scripts",
        )
        if not args.missing_ok:
            raise err
        print(f"no endpoint {args.name!r}: nothing to delete", file=sys.stderr)
        return 0
    rec = delete_endpoint(ctx.ws, args.name, force=args.force)
    if args.json:
        print(json.dumps({"deleted": rec.name}))
        return 0
    print(escape_controls(f"endpoint {rec.name} deleted (server stopped, {rec.uri or 'no URI'} freed)"))
    return 0
