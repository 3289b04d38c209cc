"""One read model: ``mltrain ... --json`` and the dashboard's JSON API (a real uvicorn server on
127.0.0.1) give a run, a model version and an endpoint of the same workspace with the same fields
under the same names and values; the dashboard only adds what it alone asks (an endpoint's server)."""

from __future__ import annotations

import pytest

from .helpers import ok, serving

DASHBOARD_ONLY = {
    "model": {"input_schema"},  # asked of the endpoints serving it
    "endpoint": {"aliases", "reachable", "unreachable_reason", "input_schema"},
}


@pytest.fixture(scope="module")
def ui(pages):
    with serving(pages["root"]) as server:
        yield server


def _same(cli_view: dict, api_view: dict, extra: set[str]) -> None:
    assert set(api_view) - set(cli_view) <= extra, sorted(set(api_view) - set(cli_view))
    assert {k: api_view[k] for k in cli_view} == cli_view


def test_run_show_json_is_the_dashboards_run(ui, pages, cli_json):
    run_id = pages["a"]
    shown = cli_json("--workspace", str(pages["root"]), "runs", "show", run_id)
    assert shown["id"] == run_id and shown["models"] and shown["history"] and shown["artifacts"]
    _same(shown, ok(ui, f"/api/runs/{run_id}"), set())
    sweep = cli_json("--workspace", str(pages["root"]), "runs", "show", pages["sweep"])
    assert len(sweep["children"]) == 6
    _same(sweep, ok(ui, f"/api/runs/{pages['sweep']}"), set())


def test_model_show_json_is_the_dashboards_model_version(ui, pages, cli_json):
    shown = cli_json("--workspace", str(pages["root"]), "models", "show", "iris-model:2")
    assert shown["name"] == "iris-model" and shown["version"] == 2 and shown["endpoints"]
    _same(shown, ok(ui, "/api/models/iris-model/versions/2"), DASHBOARD_ONLY["model"])


def test_endpoint_show_json_is_the_dashboards_endpoint(ui, pages, cli_json):
    shown = cli_json("--workspace", str(pages["root"]), "endpoints", "show", "iris-ep")
    assert shown["name"] == "iris-ep" and shown["model"] == "iris-model:2" and shown["scoring_uri"]
    _same(shown, ok(ui, "/api/endpoints/iris-ep"), DASHBOARD_ONLY["endpoint"])
    listed = cli_json("--workspace", str(pages["root"]), "endpoints", "list")
    assert listed == ok(ui, "/api/endpoints")


def test_envs_list_json_is_the_dashboards_environments(ui, pages, cli_json):
    listed = cli_json("--workspace", str(pages["root"]), "envs", "list")
    assert [e["name"] for e in listed] == ["sklearn"] and listed[0]["runs"]["count"] == 2
    assert listed == ok(ui, "/api/environments")
