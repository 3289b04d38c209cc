"""``mltrain ui``: serve the web dashboard over the workspace."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mltrain.cli.main import Context


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "ui",
        help="serve the web dashboard: runs, live metric charts, sweeps, models, endpoints, environments",
        description="Serve the dashboard and its JSON API (/api, OpenAPI at /api/openapi.json) over the workspace. "
        "It binds 127.0.0.1 by default; any other address needs a token, and then every request needs it. "
        "It is read-only unless --allow-write is given; write actions (cancel a run, set an alias, archive a "
        "version) always need the token (one is generated and printed if none is given). Give the token in a "
        "file (--token-file) or in the environment variable MLTRAIN_UI_TOKEN: --token shows it to every user "
        "of the machine (ps).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port)")
    p.add_argument("--allow-write", action="store_true", help="allow write actions (with the token)")
    p.add_argument("--token-file", metavar="FILE", help="a file whose first line is the token (at least 16 characters)")
    p.add_argument(
        "--token", metavar="T", help="the token itself (visible in ps: prefer --token-file or $MLTRAIN_UI_TOKEN)"
    )
    p.add_argument(
        "--endpoint-host",
        metavar="HOST",
        action="append",
        default=[],
        help="a host (besides loopback addresses) the endpoints page may send an endpoint's key to (repeatable)",
    )
    p.set_defaults(handler=cmd_ui)


def cmd_ui(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.ui.server import TOKEN_ENV, find_token, serve, ui_settings

    if not 0 <= args.port <= 65535:
        from mltrain.ui.server import UiError

        raise UiError(f"--port must be 0..65535, got {args.port}")
    token = find_token(args.token, args.token_file)
    if args.token is not None:
        print(
            "mltrain ui: warning: --token shows the token to every user of this machine (ps, /proc/PID/cmdline); "
            f"give it with --token-file FILE or the environment variable {TOKEN_ENV} instead",
            file=sys.stderr,
            flush=True,
        )
    settings, generated = ui_settings(args.host, token, args.allow_write, endpoint_hosts=tuple(args.endpoint_host))
    ws = ctx.ws  # opened as every command opens it (runs whose driver died are recorded as such)

    def announce(url: str) -> None:
        print(f"mltrain dashboard of {ws.root} at {url}", flush=True)
        mode = "writes allowed with the token" if settings.allow_write else "read-only"
        print(f"  API: {url.split('?')[0]}api/openapi.json; {mode}", flush=True)
        if generated:
            print(f"  token for write actions: {settings.token}", flush=True)
        print("  Ctrl-C stops it", flush=True)

    try:
        serve(ws, settings, args.host, args.port, announce)
    except KeyboardInterrupt:
        pass
    print("dashboard stopped", file=sys.stderr)
    return 0
