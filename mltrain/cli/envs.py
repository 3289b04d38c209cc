"""``mltrain envs ...``: list, show, build and prune environments.

``envs build NAME`` composes the ``environment`` config group the way ``python -m mltrain`` does
(mltrain's conf/ plus the project's ./conf, with overrides), locks it in the workspace and builds it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.cli.output import fmt_bytes, fmt_time, print_json, print_kv, print_table
from mltrain.text import LINES, escape_controls

if TYPE_CHECKING:
    from mltrain.cli.main import Context

# keys of the environment config node: `mltrain envs build NAME python=3.12` means environment.python
_ENV_KEYS = ("name", "version", "build", "python", "pip", "requirements_file", "conda_file", "env_vars", "docker")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    envs = sub.add_parser("envs", help="list, show, build and prune environments")
    esub = envs.add_subparsers(dest="command", metavar="ACTION")
    esub.required = True

    p = esub.add_parser("list", parents=[common], help="environments this workspace built or used")
    p.set_defaults(handler=cmd_list)

    p = esub.add_parser("show", parents=[common], help="spec, lock, size and last use of an environment")
    p.add_argument("ident", metavar="HASH|NAME", help="an environment hash (or a unique prefix), or a name")
    p.set_defaults(handler=cmd_show)

    p = esub.add_parser(
        "build",
        parents=[common],
        help="lock and build an environment of the config group (conf/environment/NAME.yaml)",
        description="Compose environment=NAME (mltrain's conf/ and ./conf) with OVERRIDES, lock it on "
        "first use and build it unless it is cached. Example: mltrain envs build sklearn environment.python=3.12",
    )
    p.add_argument("name", metavar="NAME", help="an option of the environment config group, e.g. sklearn")
    p.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="config overrides, e.g. environment.python=3.12")
    p.add_argument("--rebuild", action="store_true", help="lock the spec again and rebuild, even when cached")
    p.add_argument(
        "--dockerfile",
        metavar="DIR",
        help="write a Dockerfile and build context for the environment into DIR instead of building it",
    )
    p.set_defaults(handler=cmd_build)

    p = esub.add_parser(
        "prune",
        parents=[common],
        help="delete environments unused for a while (venvs, docker images) and their records",
    )
    p.add_argument(
        "--older-than", required=True, metavar="DURATION", help="unused for at least this long: 30d, 12h, 90m, 1d12h"
    )
    p.add_argument("--dry-run", action="store_true", help="only show what would be deleted")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="OVERRIDE",
        help="a compute whose hosts hold environments to prune too, e.g. +compute=ssh 'compute.hosts=[{host: gpu1}]'",
    )
    p.set_defaults(handler=cmd_prune)


# -- composing the environment config group -----------------------------------------------------------
def _qualify(override: str) -> str:
    """``python=3.12`` → ``environment.python=3.12`` (keys of the environment node only)."""
    head = override.lstrip("+~")
    prefix = override[: len(override) - len(head)]
    key = head.split("=", 1)[0]
    if key.split(".", 1)[0] in _ENV_KEYS:
        return f"{prefix}environment.{head}"
    return override


def environment_options() -> list[str]:
    """The options of the environment config group (mltrain's and the project's ./conf)."""
    from mltrain.config.errors import group_options

    return group_options("environment")


def compose_environment(name: str, overrides: list[str]) -> dict[str, Any]:
    """The ``environment`` node of the config ``python -m mltrain environment=NAME OVERRIDES`` composes."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import MissingConfigException

    from mltrain.bundled import bundled_dir
    from mltrain.config.app import prepare_hydra
    from mltrain.config.errors import describe_config_error
    from mltrain.environments.variables import plain_config
    from mltrain.errors import ConfigError

    prepare_hydra()
    try:
        with initialize_config_dir(config_dir=str(bundled_dir("conf")), version_base="1.3"):
            cfg = compose("config", overrides=[f"environment={name}", *(_qualify(o) for o in overrides)])
        node = plain_config(cfg, ["environment"])["environment"]  # ${oc.env:NAME} kept: read at build
    except MissingConfigException as exc:
        if f"environment/{name}" in str(exc):
            raise ConfigError(
                f"no environment {name!r} in the environment config group",
                hint="options: " + ", ".join(environment_options()) + " (add your own as ./conf/environment/NAME.yaml)",
            ) from exc
        raise ConfigError(describe_config_error(exc)) from exc
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - every composition error is reported, not traced
        raise ConfigError(describe_config_error(exc)) from exc
    assert isinstance(node, dict)
    return node


# -- commands -------------------------------------------------------------------------------------------
def _views(ctx: Context, ident: str | None = None) -> Any:
    """Every environment (or the one ``ident`` names) as shown; sizes measured now are stored."""
    from mltrain.views.environments import Sizes, environment_detail, list_environments

    measured: Sizes = {}
    out = environment_detail(ctx.ws, ident, measured) if ident else list_environments(ctx.ws, measured)
    for (builder, env_hash), size in measured.items():
        ctx.ws.environments.set_size(env_hash, builder, size)
    return out


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    views = _views(ctx)
    if args.json:
        print_json(views)
        return 0
    rows = [
        (
            v["name"],
            v["builder"],
            v["hash"][:12],
            v["python"],
            fmt_bytes(v["size_bytes"]),
            fmt_time(v["last_used_at"]),
            (v["location"] or "-") + (" (missing)" if v["present"] is False else ""),
        )
        for v in views
    ]
    print_table(
        rows,
        ["NAME", "BUILDER", "HASH", "PYTHON", "SIZE", "LAST USED", "LOCATION"],
        "no environments yet (they are recorded when a run or `mltrain envs build NAME` uses them)",
    )
    return 0


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    v = _views(ctx, args.ident)
    if args.json:
        print_json(v)
        return 0
    import yaml

    machine_use = v["last_used_on_machine"]
    print_kv(
        [
            ("name", v["name"] + (f" (version {v['version']})" if v["version"] else "")),
            ("builder", v["builder"]),
            ("hash", v["hash"]),
            ("python", v["python"]),
            ("location", (v["location"] or "-") + (" (missing: it was removed)" if v["present"] is False else "")),
            ("size", fmt_bytes(v["size_bytes"])),
            ("created", fmt_time(v["created_at"])),
            ("last used", fmt_time(v["last_used_at"])),
        ]
        + ([("last used here", fmt_time(machine_use))] if machine_use else [])
    )
    _rec, others = ctx.ws.environments.find(args.ident)
    if others:
        print(escape_controls(f"\nOther environments named {v['name']}:", LINES))
        rows = [(o.hash[:12], o.builder, fmt_time(o.last_used_at)) for o in others]
        print_table(rows, ["HASH", "BUILDER", "LAST USED"])
    print("\nSpec:")
    print("  " + yaml.safe_dump(v["spec"], sort_keys=False).rstrip().replace("\n", "\n  "))
    print("\nLock:")
    lock = escape_controls((v["lock"] or "").strip(), LINES)
    print("  " + lock.replace("\n", "\n  ") if lock else "  (nothing to install)")
    return 0


def cmd_build(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.environments.base import record_use
    from mltrain.environments.resolve import resolve
    from mltrain.environments.spec import EnvSpec
    from mltrain.errors import EnvironmentSpecError

    node = compose_environment(args.name, args.overrides)
    spec = EnvSpec.from_config(node, base_dir=Path.cwd())
    if args.dockerfile:
        env = resolve(spec, ctx.ws, relock=args.rebuild)
        try:
            from mltrain.environments.docker import write_build_context
        except ImportError as exc:
            raise EnvironmentSpecError(
                "this mltrain cannot write Dockerfiles (mltrain.environments.docker has no write_build_context)",
                hint="upgrade mltrain",
            ) from exc
        dest = Path(args.dockerfile)
        written = Path(write_build_context(env, dest))
        dockerfile = written if written.is_file() else written / "Dockerfile"
        if args.json:
            print_json({"name": spec.name, "hash": env.hash, "dockerfile": str(dockerfile), "context": str(dest)})
        else:
            print(f"wrote {dockerfile} and the build context of environment {spec.name} ({env.hash[:12]})")
            print(f"build it with: docker build --network {spec.docker_network} {dest}")
        return 0
    out = sys.stderr if args.json else sys.stdout
    started = time.monotonic()
    env = resolve(spec, ctx.ws, relock=args.rebuild)
    from mltrain.environments.builders import builder_for

    builder = builder_for(spec.build)  # docker: the engine of $DOCKER_HOST
    builder.check(env)

    def log(line: str) -> None:
        print(f"[build] {escape_controls(line)}", file=out, flush=True)

    built = builder.materialise(env, log, rebuild=args.rebuild)
    size = built.size_bytes if built.size_bytes is not None else builder.size(built.hash, built.location)
    record_use(ctx.ws, env, built, size_bytes=size)
    took = time.monotonic() - started
    if args.json:
        print_json(
            {
                "name": spec.name,
                "builder": built.builder,
                "hash": built.hash,
                "python": spec.python,
                "location": built.location,
                "cached": built.cached,
                "size_bytes": size,
                "seconds": round(took, 3),
            }
        )
        return 0
    state = "cached" if built.cached else f"built in {took:.1f} s"
    print(f"environment {spec.name} ({built.builder}, Python {spec.python}, hash {built.hash[:12]}): {state}")
    print(f"  location: {built.location}")
    print(f"  python:   {built.python}")
    if size is not None:
        print(f"  size:     {fmt_bytes(size)}")
    return 0


def cmd_prune(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.environments import prune

    cutoff = time.time() - prune.parse_duration(args.older_than)
    target = None
    if args.overrides:  # environments on the hosts of that compute (``KIND@ssh:HOST``) are pruned there
        from mltrain.cli.compute import compose_compute
        from mltrain.compute.targets import compute_from_config
        from mltrain.errors import ConfigError

        target = compute_from_config(compose_compute(args.overrides))
        if not isinstance(target, prune.Elsewhere):
            target.close()
            raise ConfigError(
                f"compute {target.describe()} holds no environments of its own to prune",
                hint="give the compute whose hosts hold them, e.g. +compute=ssh 'compute.hosts=[{host: gpu1}]'",
            )
    try:
        items = prune.plan(ctx.ws, cutoff, target)
        if not args.dry_run:
            items = prune.apply(ctx.ws, items, cutoff, target)
    finally:
        if target is not None:
            target.close()
    removed = [i for i in items if i.remove]
    freed = sum(i.size_bytes or 0 for i in removed)
    if args.json:
        print_json({"dry_run": args.dry_run, "freed_bytes": freed, "environments": [vars(i) for i in items]})
        return 0
    verb = "would remove" if args.dry_run else "removed"
    if not items:
        print(f"nothing unused for {args.older_than}")
        return 0
    rows = [
        (
            verb if i.remove else "kept",
            i.name or "-",
            i.builder,
            i.hash[:12],
            fmt_time(i.last_used),
            fmt_bytes(i.size_bytes),
            i.note,
        )
        for i in items
    ]
    print_table(rows, ["ACTION", "NAME", "BUILDER", "HASH", "LAST USED", "SIZE", "NOTE"])
    print(f"\n{verb} {len(removed)} environments, {fmt_bytes(freed)}" + (" (dry run)" if args.dry_run else ""))
    return 0
