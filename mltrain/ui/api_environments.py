"""API of environments: every built environment with its spec, lock, size and the runs that used it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mltrain.ui.params import json_response, ws_of


def list_environments(request: Request) -> Response:
    """Every built environment as ``mltrain envs list --json`` gives it
    (:func:`mltrain.views.environments.list_environments`): spec, lock, size, last use, whether it is
    still there (``present``) and ``runs``: how many runs used it and the newest of them. A size its
    builder measures here is kept for this dashboard process, not stored: the dashboard does not write
    on reads."""
    from mltrain.views.environments import Sizes
    from mltrain.views.environments import list_environments as views

    sizes: Sizes = request.app.state.__dict__.setdefault("_env_sizes", {})
    return json_response(views(ws_of(request), sizes))
