"""The dashboard's queries (paging, sorting and filtering by metric, series, sweeps, live increments,
data assets with a paged manifest and lineage) on a team workspace: a real PostgreSQL server started on
127.0.0.1."""

from __future__ import annotations

from support import request
from test_postgres import pg_url  # noqa: F401 - the fixture that starts the server

from .helpers import MANY_FILES, open_ws, seed, seed_data, serving


def test_dashboard_api_on_postgresql(tmp_path, pg_url):  # noqa: F811
    root = tmp_path / "ws"
    ids = seed(root, pg_url)
    seed_data(root, {**ids, "d": ids["b"]}, pg_url)
    with serving(root, pg_url) as ui:

        def ok(path):
            resp = request(ui.url, "GET", path)
            assert resp.status == 200, (path, resp.body[:300])
            return resp.json()

        assert ok("/api/runs")["total"] == 4
        metrics = ok("/api/columns")["metrics"]
        assert {m["name"] for m in metrics} == {"accuracy", "kernel", "loss", "best_accuracy", "children_completed",
                                                "children_failed"}  # fmt: skip
        ranked = [r["id"] for r in ok("/api/runs?flat=1&sort=-metric:accuracy")["runs"]]
        assert ranked[:2] == [ids["c"], ids["a"]] and ranked[-1] == ids["sweep"]
        assert {r["id"] for r in ok("/api/runs?metric=accuracy>=0.9&tag=stage")["runs"]} == {ids["a"]}
        by_c = [r["args"].get("C") for r in ok("/api/runs?flat=1&sort=-arg:C")["runs"]]
        assert by_c[0] == 10.0 and by_c[-1] is None and by_c[:-1] == sorted(by_c[:-1], reverse=True)
        kernels = [r["args"]["kernel"] for r in ok("/api/runs?sort=arg:kernel")["runs"] if "kernel" in r["args"]]
        assert kernels == sorted(kernels)
        assert ok("/api/runs?sort=-tag:stage")["runs"][0]["id"] == ids["a"]
        assert [c["trial"] for c in ok(f"/api/sweeps/{ids['sweep']}")["children"]] == [5, 4, 3, 2, 1, 0]
        assert ok(f"/api/runs?parent={ids['sweep']}")["total"] == 6
        every = ok(f"/api/runs/{ids['a']}/series")
        assert every["series"]["accuracy"]["value"] == [0.5, 0.8, 0.93]
        ws = open_ws(root, pg_url)
        try:
            ws.metrics.add(ids["a"], [{"t": 9.0, "k": "accuracy", "v": 0.95, "s": 3}])
            newer = ok(f"/api/runs/{ids['a']}/series?after={every['last_id']}")
            assert newer["series"]["accuracy"]["value"] == [0.95] and newer["count"] == 1
            assert ok(f"/api/runs/{ids['a']}")["scalars"]["accuracy"] == 0.95
            assert len(ok(f"/api/sweeps/{ids['sweep']}")["children"]) == 6
            values = [1.0 / (i + 1) for i in range(5000)]
            values[1234], values[4321] = -5.0, 5.0
            ws.metrics.add(ids["c"], [{"t": 10.0 + i, "k": "long", "v": v, "s": i} for i, v in enumerate(values)])
            small = ok(f"/api/runs/{ids['c']}/series?key=long&points=40")
            assert small["downsampled"] and len(small["value"]) <= 40
            points = dict(zip(small["step"], small["value"], strict=True))
            assert {1234: -5.0, 4321: 5.0, 0: 1.0, 4999: values[-1]}.items() <= points.items()  # extremes and ends
            both = ok(f"/api/compare/series?runs={ids['a']},{ids['c']}&points=40")["runs"]
            assert both[ids["c"]]["long"] == {k: v for k, v in small.items() if k != "key"}
            assert both[ids["a"]]["accuracy"]["value"] == [0.5, 0.8, 0.93, 0.95]
            assert ok("/api/runs/20260101_000001")["run"]["id"] == ids["a"]  # an id prefix, matched literally
            assert request(ui.url, "GET", "/api/runs/2026010_").status == 404
            assets = {a["name"]: a for a in ok("/api/data")}
            assert sorted(assets) == ["features", "iris-train", "many", "old", "ref"] and assets["old"]["archived"]
            assert [v["aliases"] for v in assets["iris-train"]["versions"]] == [["prod"], []]
            pages = [ok(f"/api/data/many/versions/1?offset={o}")["manifest"] for o in (0, 1000)]
            paths = [e["relpath"] for p in pages for e in p["entries"]]
            assert paths == [f"part-{i:05d}.csv" for i in range(MANY_FILES)] and pages[0]["total"] == MANY_FILES
            lineage = ok("/api/data/features/versions/1")["lineage"]
            assert lineage["produced_by"]["run"] == ids["b"]
            assert lineage["read_by"][0]["models"] == [{"name": "iris-model", "version": 1}]
            assert [x["name"] for x in ok("/api/models/iris-model/versions/1")["lineage"]["data"]] == [
                "iris-train", "features"]  # fmt: skip
        finally:
            ws.db.dispose()  # else the server waits for this connection when it stops
