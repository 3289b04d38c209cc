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
        "It binds 127.0.0.1 by default; any other address needs --token, and then every request needs the token. "
        "It is read-only unless --allow-write is given; write actions (cancel a run, set an alias, archive a "
        "version) always need the token (one is generated and printed if --token is not given).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port)")
    p.add_argument("--allow-write", action="store_true", help="allow write actions (with the token)")
    p.add_argument("--token", metavar="T", help="the token (at least 16 characters); required off loopback")
    p.set_defaults(handler=cmd_ui)


def cmd_ui(args: argparse.Namespace, ctx: Context) -> int:
    from mltrain.ui.server import serve, ui_settings

    if not 0 <= args.port <= 65535:
        from mltrain.ui.server import UiError

        raise UiError(f"--port must be 0..65535, got {args.port}")
    settings, generated = ui_settings(args.host, args.token, args.allow_write)
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
