"""``mltrain compute check``: connect to the selected compute target and report what it has
(for SSH: per host python, uv, docker, free disk, slots and whether it reaches the package index)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mltrain.cli.output import fmt_bytes, print_json, print_table
from mltrain.text import LINES, escape_controls

if TYPE_CHECKING:
    from mltrain.cli.main import Context


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("compute", help="compute targets")
    csub = group.add_subparsers(dest="command", metavar="ACTION")
    csub.required = True
    p = csub.add_parser("check", parents=[common], help="connect to the compute target and report what it has")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="OVERRIDE",
        help="config overrides selecting the compute, e.g. +compute=ssh 'compute.hosts=[{host: gpu1}]'",
    )
    p.set_defaults(handler=cmd_check)


def compose_compute(overrides: list[str]) -> dict[str, Any] | None:
    """The ``compute`` node ``python -m mltrain OVERRIDES`` composes (None: local)."""
    return _compose(overrides, ["compute"]).get("compute")


def _compose(overrides: list[str], keys: list[str]) -> dict[str, Any]:
    """The nodes ``keys`` that ``python -m mltrain OVERRIDES`` composes (``${oc.env:NAME}`` of env vars
    kept as written, as a run keeps them); those it lacks are None."""
    from hydra import compose, initialize_config_dir

    from mltrain.bundled import bundled_dir
    from mltrain.config.app import prepare_hydra
    from mltrain.config.errors import describe_config_error
    from mltrain.environments.variables import plain_config
    from mltrain.errors import ConfigError, MltrainError

    prepare_hydra()
    try:
        with initialize_config_dir(config_dir=str(bundled_dir("conf")), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        nodes = plain_config(cfg, [k for k in keys if k in cfg])
    except MltrainError:
        raise
    except Exception as exc:  # noqa: BLE001 - every composition error is reported, not traced
        raise ConfigError(describe_config_error(exc)) from exc
    return {k: nodes.get(k) for k in keys}


def cmd_check(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.compute.configs import redact_urls
    from mltrain.compute.targets import compute_from_config
    from mltrain.environments.spec import build_env

    nodes = _compose(args.overrides, ["compute", "environment"])
    target = compute_from_config(nodes["compute"])
    report = getattr(target, "report", None)
    try:
        if report is None:  # targets without per-host detail: reachable or not
            target.check()
            rows: list[dict[str, Any]] = [{"host": target.describe(), "ok": True}]
        else:
            rows = report(build_env((nodes["environment"] or {}).get("env_vars") or {}))  # as its build gets them
    finally:
        target.close()
    for r in rows:  # a proxy's or an index's credentials are never shown
        if r.get("index"):
            r["index"] = {k: redact_urls(v) if isinstance(v, str) else v for k, v in r["index"].items()}
    if args.json:
        print_json(rows)
    elif rows and "node_id" in rows[0]:
        print_cluster(rows)
    else:
        table = []
        for r in rows:
            key = {"trusted": "trusted", "unknown": "UNKNOWN", "changed": "CHANGED"}.get(r.get("host_key", ""), "")
            if r.get("host_key") in ("unknown", "changed"):
                table.append((r["host"], key, "", "", "", "", "", ""))
                continue
            if not r["ok"]:
                table.append((r["host"], key, "UNREACHABLE", r.get("error", "").splitlines()[0], "", "", "", ""))
                continue
            table.append(
                (
                    r["host"],
                    key,
                    f"python {r['python']}" if r.get("python") else "ok",
                    f"uv {r['uv']}" if r.get("uv") else ("uv: will be installed with pip" if r.get("pip") else "no uv"),
                    f"docker {r['docker']}" if r.get("docker") else "no docker",
                    f"free disk {fmt_bytes(r['free_bytes'])}" if "free_bytes" in r else "",
                    f"slots {r['slots']}" if "slots" in r else "",
                    index_cell(r.get("index")),
                )
            )
        print_table(table, ["HOST", "HOST KEY", "PYTHON", "UV", "DOCKER", "DISK", "SLOTS", "PACKAGE INDEX"])
        for r in rows:
            if not r["ok"]:
                print(escape_controls(f"\n{r['host']}: {r.get('error')}", LINES))
                if r.get("hint"):
                    print(escape_controls(f"  hint: {r['hint']}", LINES))
            elif (r.get("index") or {}).get("reachable") is False:
                index = r["index"]
                where = index["url"] + (f" through the proxy {index['proxy']}" if index.get("proxy") else "")
                print(escape_controls(f"\n{r['host']}: cannot reach the package index ({where}): {index['said']}"))
                print("  runs there build their venvs from wheels this machine ships (compute.offline=true: not tried)")
    return 0 if all(r["ok"] for r in rows) else 1


def index_cell(index: dict[str, Any] | None) -> str:
    """The PACKAGE INDEX column of a host: reached, not reached, or not known."""
    if not index or index.get("reachable") is None:
        return "unknown"
    return "reachable" if index["reachable"] else "UNREACHABLE"


def print_cluster(rows: list[dict[str, Any]]) -> None:
    """The nodes of a Ray cluster, one line each."""

    def pair(free: float | None, total: float, fmt: Any = lambda v: f"{v:g}") -> str:
        return f"{'-' if free is None else fmt(free)} / {fmt(total)}"

    table = []
    for r in rows:
        custom = ", ".join(f"{k} {pair(*v)}" for k, v in sorted(r["resources"].items()))
        table.append(
            (
                r["host"] + (" (head)" if r["head"] else ""),
                r["node_id"][:12],
                r["state"],
                pair(*r["cpus"]),
                pair(*r["memory_bytes"], fmt=fmt_bytes),
                custom or "-",
                f"ray {r['ray']}",
            )
        )
    print_table(table, ["NODE", "NODE ID", "STATE", "CPUS FREE/TOTAL", "MEMORY FREE/TOTAL", "RESOURCES", "RAY"])
    alive = sum(r["state"] == "ALIVE" for r in rows)
    auth = "on" if rows[0]["auth"] == "token" else "off"
    print(f"\n{alive} of {len(rows)} nodes alive; token authentication {auth}")
    for r in rows:
        if r["state"] != "ALIVE" and r.get("state_message"):
            print(escape_controls(f"{r['host']} ({r['node_id'][:12]}): {r['state_message']}", LINES))
