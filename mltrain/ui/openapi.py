"""The OpenAPI 3 document of the dashboard API (``GET /api/openapi.json``), made from its routes."""

from __future__ import annotations

import inspect
from typing import Any

RUN = "run id (or a unique prefix)"
PARAMS: dict[str, list[tuple[str, str, str]]] = {  # path -> (name, type, description) of query parameters
    "/api/runs": [
        ("experiment", "string", "only runs of this experiment"),
        (
            "status",
            "string",
            "only runs in this status (Queued, Preparing, Running, Finalizing, Completed, Failed, Canceled)",
        ),
        ("tag", "string", "KEY (has the tag) or KEY=VALUE"),
        ("metric", "string", "KEY OP NUMBER on the run's latest value of a metric, OP one of >= <= != > < ="),
        (
            "sort",
            "string",
            "created_at, started_at, ended_at, status, id, experiment, metric:KEY (latest value), "
            "arg:NAME (a job argument; a.b for a nested one) or tag:KEY; prefix - for descending "
            "(default -created_at); runs without the value come last",
        ),
        ("parent", "string", "children of this run (a sweep) instead of top-level runs"),
        ("flat", "integer", "1: child runs too, not only top-level runs"),
        ("offset", "integer", "runs to skip (default 0)"),
        ("limit", "integer", "runs per page, 1..500 (default 50)"),
    ],
    "/api/runs/{run_id}/series": [
        ("key", "string", "one metric; without it every numeric metric of the run"),
        ("after", "integer", "only points stored after this record id (the last_id of a previous answer)"),
        ("fields", "string", "without key: the columns, some of step,ts,value (default all three)"),
        (
            "points",
            "integer",
            "with key: at most this many points, 4..20000 (default 4000); a longer series "
            "is downsampled to the first, last, lowest and highest point of each range",
        ),
    ],
    "/api/runs/{run_id}/log": [
        ("offset", "integer", "byte offset to read from (default 0)"),
        ("limit", "integer", "bytes to read, at most 1 MiB (default 256 KiB)"),
        ("build", "integer", "1: the environment build log instead of the output"),
    ],
    "/api/runs/{run_id}/events": [
        ("after", "integer", "send metric points stored after this record id"),
        ("offset", "integer", "send the log from this byte offset"),
    ],
    "/api/runs/{run_id}/artifacts/{path}": [("download", "integer", "1: always as an attachment")],
    "/api/runs/{run_id}/preview": [
        ("path", "string", "a text, Markdown, JSON, YAML, CSV or TSV artifact of the run (required)")
    ],
    "/api/endpoints/{name}/logs": [
        ("tail", "integer", "bytes from the end of the log, at most 1 MiB (default 64 KiB)")
    ],
    "/api/compare": [("runs", "string", "2 to 20 run ids, comma-separated")],
    "/api/data/{name}/versions/{version}": [
        ("offset", "integer", "manifest entries (by path) to skip (default 0)"),
        ("limit", "integer", "manifest entries to answer, 1..5000 (default 1000)"),
    ],
    "/api/compare/series": [
        ("runs", "string", "1 to 20 run ids, comma-separated"),
        ("points", "integer", "at most this many points per series, 4..20000 (default 4000)"),
    ],
}
BODIES: dict[str, dict[str, Any]] = {
    "/api/models/{name}/aliases": {"version": {"type": "integer"}, "alias": {"type": "string"}},
    "/api/models/{name}/versions/{version}/archive": {"archived": {"type": "boolean", "default": True}},
    "/api/runs/{run_id}/cancel": {},
    "/api/endpoints/{name}/score": {"data": {"description": "the endpoint's request, e.g. rows of feature values"}},
}
PATH_PARAMS = {"run_id": RUN, "name": "model, endpoint or data asset name", "version": "model or data version",
               "path": "artifact path", "alias": "a model alias"}  # fmt: skip


def _path(route_path: str) -> str:
    return route_path.replace(":path}", "}").replace(":int}", "}")


def document(routes: list[Any]) -> dict[str, Any]:
    """OpenAPI 3.1 of every route under ``/api``."""
    from mltrain import __version__

    paths: dict[str, Any] = {}
    for route in routes:
        path = getattr(route, "path", "")
        if not path.startswith("/api/") or "{rest" in path:
            continue
        path = _path(path)
        doc = inspect.getdoc(route.endpoint) or ""
        params = [
            {"name": n, "in": "path", "required": True, "description": d, "schema": {"type": "string"}}
            for n, d in PATH_PARAMS.items()
            if "{" + n + "}" in path
        ]
        params += [
            {"name": n, "in": "query", "description": d, "schema": {"type": t}} for n, t, d in PARAMS.get(path, [])
        ]
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            op: dict[str, Any] = {
                "summary": doc.split("\n")[0] or route.name,
                "description": doc,
                "parameters": params,
                "responses": {
                    "200": {"description": "JSON (text/event-stream for events, the file for artifacts)"},
                    "4XX": {"description": 'bad input: {"error": ..., "hint": ...}'},
                },
            }
            if getattr(route.endpoint, "needs_token", False):
                op["security"] = [{"token": []}]
            if method == "POST":
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object", "properties": BODIES.get(path, {})}}},
                }
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "mltrain dashboard API", "version": __version__},
        "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }
