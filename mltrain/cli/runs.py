"""``mltrain runs ...`` and ``mltrain experiments ...``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.cli.output import fmt_bytes, fmt_duration, fmt_time, print_json, print_kv, print_table
from mltrain.runs.output import STD_LOG
from mltrain.runs.summary import format_value
from mltrain.text import LINES, TerminalStream, escape_controls

if TYPE_CHECKING:
    from mltrain.cli.main import Context
    from mltrain.workspace.runs import RunInfo


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    runs = sub.add_parser("runs", help="list, inspect, follow, cancel and download runs")
    rsub = runs.add_subparsers(dest="command", metavar="ACTION")
    rsub.required = True

    p = rsub.add_parser("list", parents=[common], help="runs, newest first")
    p.add_argument("--experiment", "-e", help="only this experiment")
    p.add_argument("--status", "-s", help="only this status (e.g. Running, Failed)")
    p.add_argument("--limit", "-n", type=int, default=50, help="at most this many (0: all; default 50)")
    p.add_argument(
        "--where",
        "-w",
        action="append",
        default=[],
        metavar="EXPR",
        help='only runs whose last value of a metric matches, e.g. "accuracy>0.9", "kernel=rbf" (repeatable)',
    )
    p.add_argument(
        "--tag", "-t", action="append", default=[], metavar="K=V", help="only runs with this tag (repeatable)"
    )
    p.add_argument("--sort", metavar="METRIC", help="order by the last value of a metric, highest first")
    p.add_argument("--asc", action="store_true", help="with --sort: lowest first")
    p.set_defaults(handler=cmd_list)

    p = rsub.add_parser("show", parents=[common], help="config, metrics, status timeline and artifacts of a run")
    p.add_argument("run_id", metavar="ID", help="run id (or a unique prefix)")
    p.set_defaults(handler=cmd_show)

    p = rsub.add_parser("metrics", help="every logged value of a run's metrics, with step and time")
    p.add_argument("run_id", metavar="ID")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these metrics (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--csv", action="store_true", help="print CSV (name, step, value, time)")
    p.set_defaults(handler=cmd_metrics)

    p = rsub.add_parser("compare", parents=[common], help="arguments and final metrics of runs side by side")
    p.add_argument("run_ids", nargs="+", metavar="ID")
    p.set_defaults(handler=cmd_compare)

    p = rsub.add_parser("logs", help="the output of a run")
    p.add_argument("run_id", metavar="ID")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")
    p.add_argument("--build", action="store_true", help="the environment build log instead")
    p.set_defaults(handler=cmd_logs)

    p = rsub.add_parser("wait", help="wait until a run ends; exit with its code (0 completed, 1 failed, 130 canceled)")
    p.add_argument("run_id", metavar="ID")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds (exit 3)")
    p.set_defaults(handler=lambda a, c: _detached().cmd_wait(a, c))

    p = rsub.add_parser(
        "rerun",
        help="run a recorded run again from its record: snapshot, environment lock, config, compute",
        description="Run ID again from its record alone: its snapshot restored, the environment lock it ran "
        "with, its resolved config and overrides, the same compute target; OVERRIDES are applied on top "
        "(e.g. +compute=docker, job.arguments.penalty=2). The new run is tagged mltrain.rerun_of=ID.",
    )
    p.add_argument("run_id", metavar="ID")
    p.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="config overrides, as for python -m mltrain")
    p.add_argument("--detach", action="store_true", help="start it detached: print its id and return")
    p.set_defaults(handler=lambda a, c: _detached().cmd_rerun(a, c))

    p = rsub.add_parser("cancel", parents=[common], help="cancel a run (and its children)")
    p.add_argument("run_id", metavar="ID")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for it to stop (default 30)")
    p.set_defaults(handler=cmd_cancel, recover=False)  # a lost run is canceled, not recovered as Failed

    p = rsub.add_parser("download", help="the run's artifacts (outputs/, logs/, uploads) into a folder")
    p.add_argument("run_id", metavar="ID")
    p.add_argument("--dest", "-o", default=None, help="destination folder (default: ./<run id>)")
    p.add_argument("--snapshot", action="store_true", help="also restore the run's source snapshot into DEST/source")
    p.set_defaults(handler=cmd_download)

    exps = sub.add_parser("experiments", help="experiments of the workspace")
    esub = exps.add_subparsers(dest="command", metavar="ACTION")
    esub.required = True
    p = esub.add_parser("list", parents=[common], help="experiments with their run counts")
    p.set_defaults(handler=cmd_experiments)


def _detached() -> Any:
    from mltrain.cli import runs_detached

    return runs_detached


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.cli.metrics import parse_tags, parse_where

    runs = ctx.ws.runs.list(
        args.experiment,
        args.status,
        limit=args.limit or None,
        where=[parse_where(w) for w in args.where],
        tags=parse_tags(args.tag),
        sort=args.sort,
        ascending=args.asc,
    )
    if args.json:
        from mltrain.views.runs import public_run

        print_json([public_run(r) for r in runs])
        return 0
    rows = [
        (
            r.id,
            r.experiment,
            r.status,
            fmt_time(r.created_at),
            fmt_duration(r.created_at, r.ended_at),
            r.compute,
            r.script,
        )
        for r in runs
    ]
    print_table(rows, ["RUN ID", "EXPERIMENT", "STATUS", "CREATED", "DURATION", "COMPUTE", "SCRIPT"], "no runs")
    return 0


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.views.runs import run_detail

    ws = ctx.ws
    d = run_detail(ws, args.run_id)
    if args.json:
        print_json(d)
        return 0
    git = None
    if d["git_commit"]:
        git = d["git_commit"][:12] + (" (dirty)" if d["git_dirty"] else "")
    print_kv(
        [
            ("run", d["id"]),
            ("experiment", d["experiment"]),
            ("status", d["status"]),
            ("created", fmt_time(d["created_at"])),
            ("duration", fmt_duration(d["created_at"], d["ended_at"])),
            ("compute", d["compute"]),
            ("ran on", (d.get("job_ref") or {}).get("node")),
            ("command", " ".join([d["script"] or "", *(d["arguments"] or [])])),
            ("overrides", " ".join(d["overrides"] or []) or None),
            ("environment", f"{d['env_name']} ({(d['env_hash'] or '')[:12]})"),
            ("snapshot", d["snapshot_id"]),
            ("source", d["source_dir"]),
            ("git", git),
            ("parent run", d["parent_run_id"]),
            ("exit code", d["exit_code"]),
            ("error", d["error"]),
            ("problems", "\n".join(d["problems"] or []) or None),
            ("run folder", d["run_dir"]),
        ]
    )
    print("\nStatus timeline:")
    prev = None
    rows = []
    for h in d["history"]:
        rows.append((h.status, fmt_time(h.ts), f"+{h.ts - prev:.2f}s" if prev else "", h.detail or ""))
        prev = h.ts
    print_table(rows, ["STATUS", "AT", "AFTER", "DETAIL"])
    print("\nMetrics:")
    print_table([(k, format_value(v)) for k, v in d["metrics"].items()], ["NAME", "VALUE"], "(none)")
    from mltrain.cli.metrics import print_series

    print_series(ws, d["id"], d["series"])
    if d["tags"]:
        print("\nTags:")
        print_table(sorted(d["tags"].items()), ["KEY", "VALUE"])
    from mltrain.cli.lineage import print_run_data

    print_run_data(d)
    print("\nArtifacts:")
    print_table([(a.path, fmt_bytes(a.size), a.sha256[:12]) for a in d["artifacts"]], ["PATH", "SIZE", "SHA256"])
    if "children" in d:
        metric = d["primary_metric"]
        print(escape_controls(f"\nChildren (sorted by {metric or 'trial: no primary metric'}):", LINES))
        print_table(
            [
                (
                    f"#{c['trial']}",
                    c["id"],
                    c["status"],
                    format_value(c["value"]) if c["value"] is not None else "-",
                    c["arguments"],
                )
                for c in d["children"]
            ],
            ["TRIAL", "RUN ID", "STATUS", (metric or "METRIC").upper(), "ARGUMENTS"],
        )
    if d["models"]:
        print("\nRegistered models:")
        print_table(
            [(m["name"], m["version"], m["framework"], m["framework_version"]) for m in d["models"]],
            ["NAME", "VERSION", "FRAMEWORK", "FRAMEWORK VERSION"],
        )
    if d["config"]:
        import yaml

        print("\nConfig:")
        print("  " + yaml.safe_dump(d["config"], sort_keys=False).rstrip().replace("\n", "\n  "))
    return 0


def cmd_metrics(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.cli.metrics import print_history

    return print_history(ctx.ws, args.run_id, args.names, "json" if args.json else "csv" if args.csv else "table")


def cmd_compare(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.cli.metrics import compare

    return compare(ctx.ws, args.run_ids, args.json)


def _log_bytes(ctx: Context, run: RunInfo, rel: str, offset: int) -> bytes:
    from mltrain.workspace.run_files import read_run_file

    return read_run_file(ctx.ws, run, rel, offset)


def cmd_logs(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.runs.output import BUILD_LOG
    from mltrain.workspace.runs import TERMINAL

    run = ctx.ws.runs.get(args.run_id)
    rel = BUILD_LOG if args.build else STD_LOG
    offset = 0
    out = TerminalStream(sys.stdout.buffer)  # a script's output: control characters escaped
    next_recovery = time.monotonic() + 2.0
    while True:
        data = _log_bytes(ctx, run, rel, offset)
        if data:
            out.write(data)
            offset += len(data)
        if not args.follow or run.status in TERMINAL:
            break
        time.sleep(0.3)
        if time.monotonic() >= next_recovery:  # a driver that died meanwhile: its run is recovered (Failed)
            from mltrain.runs.recovery import recover_orphans

            next_recovery = time.monotonic() + 2.0
            recover_orphans(ctx.ws)
        run = ctx.ws.runs.get(run.id)
        if run.status in TERMINAL:
            continue  # one more read for what came last
    if args.follow:
        print(f"[mltrain] run {run.id} {run.status}", file=sys.stderr)
    return 0


def cmd_cancel(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.runs.cancel import cancel_run
    from mltrain.workspace.runs import TERMINAL

    run = ctx.ws.runs.get(args.run_id)
    if run.status in TERMINAL:
        print(f"run {run.id} already ended: {run.status}")
        return 0
    run = cancel_run(ctx.ws, run.id, wait_s=args.wait)
    if args.json:
        print_json({"id": run.id, "status": run.status})
    elif run.status in TERMINAL:
        print(f"run {run.id} {run.status}")
    else:
        print(f"cancel of run {run.id} requested; it is still {run.status} (its driver acts on it within seconds)")
    return 0


def cmd_download(args: argparse.Namespace, ctx: Context) -> int:
    ws = ctx.ws
    run = ws.runs.get(args.run_id)
    from mltrain.workspace.run_files import download_artifacts

    dest = Path(args.dest or run.id)
    bad = download_artifacts(ws, run.id, dest)
    print(f"{len(ws.runs.artifacts(run.id)) - len(bad)} files of run {run.id} in {dest}")
    if args.snapshot and run.snapshot_id:
        snap = ws.snapshots.restore(run.snapshot_id, dest / "source")
        print(f"snapshot {snap.id[:12]} ({len(snap.files)} files) in {dest / 'source'}")
    if bad:
        print(f"mltrain: error: {len(bad)} files were not downloaded (nothing was written for them):", file=sys.stderr)
        for line in bad:
            print(f"  {escape_controls(line)}", file=sys.stderr)
        hint = "restore the blobs from a backup; `mltrain workspace check` lists every bad blob"
        print(f"  hint: {hint}", file=sys.stderr)
        return 1
    return 0


def cmd_experiments(args: argparse.Namespace, ctx: Context) -> int:
    exps = ctx.ws.runs.experiments()
    if args.json:
        print_json(exps)
        return 0
    print_table(
        [(e.name, e.runs, fmt_time(e.last_run_at), fmt_time(e.created_at)) for e in exps],
        ["EXPERIMENT", "RUNS", "LAST RUN", "CREATED"],
        "no experiments",
    )
    return 0
