"""The dashboard's JSON API over a real uvicorn server on 127.0.0.1: what it answers, bad
parameters (4xx with a JSON error, never 500), the token and write rules, live events."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

import pytest
from support import request

from .helpers import TOKEN, ids, ok, open_ws, registry, running_run, serving, start_ui


@pytest.fixture(scope="module")
def ui(seeded):
    with serving(seeded["root"]) as server:
        yield server


def get(server: Any, path: str, headers: dict[str, str] | None = None) -> Any:
    return request(server.url, "GET", path, headers=headers)


def test_runs_list_shows_a_sweep_as_one_row_with_its_children_behind_it(ui, seeded):
    page = ok(ui, "/api/runs")
    assert page["total"] == 4
    assert set(ids(page)) == {seeded["a"], seeded["b"], seeded["c"], seeded["sweep"]}
    sweep = next(r for r in page["runs"] if r["id"] == seeded["sweep"])
    assert sweep["children"] == 6
    children = ok(ui, f"/api/runs?parent={seeded['sweep']}&sort=created_at")
    assert ids(children) == seeded["children"]
    assert ok(ui, "/api/runs?flat=1")["total"] == 10
    a = next(r for r in page["runs"] if r["id"] == seeded["a"])
    assert a["metrics"] == {"accuracy": 0.93, "loss": 0.2, "kernel": "rbf"} and a["tags"] == {"stage": "baseline"}


def test_runs_filter_by_experiment_status_tag_and_metric(ui, seeded):
    assert ids(ok(ui, "/api/runs?experiment=digits")) == [seeded["c"]]
    assert ids(ok(ui, "/api/runs?status=failed")) == [seeded["b"]]
    assert ids(ok(ui, "/api/runs?tag=stage")) == [seeded["a"]]
    assert ids(ok(ui, "/api/runs?tag=stage=baseline")) == [seeded["a"]]
    assert ids(ok(ui, "/api/runs?tag=stage=other")) == []
    assert set(ids(ok(ui, "/api/runs?metric=accuracy>=0.9"))) == {seeded["a"], seeded["c"]}
    assert ids(ok(ui, "/api/runs?metric=loss<0.3")) == [seeded["a"]]
    assert set(ids(ok(ui, "/api/runs?metric=accuracy>0.7&parent=" + seeded["sweep"]))) == set(seeded["children"][4:])


def test_runs_sort_by_a_metric_and_page_on_the_server(ui, seeded):
    desc = ids(ok(ui, "/api/runs?flat=1&sort=-metric:accuracy"))
    assert desc[:3] == [seeded["c"], seeded["a"], seeded["children"][5]]
    assert desc[-1] == seeded["sweep"]  # no accuracy: last in both directions
    asc = ids(ok(ui, "/api/runs?flat=1&sort=metric:accuracy"))
    assert asc[0] == seeded["children"][0] and asc[-1] == seeded["sweep"]
    pages = [ok(ui, f"/api/runs?flat=1&sort=-metric:accuracy&limit=3&offset={o}") for o in (0, 3, 6, 9)]
    assert [r for p in pages for r in ids(p)] == desc
    assert all(p["total"] == 10 for p in pages)


def test_run_detail_has_timeline_arguments_artifacts_models_and_series(ui, seeded):
    d = ok(ui, f"/api/runs/{seeded['a']}")
    assert d["run"]["id"] == seeded["a"] and d["args"] == {"C": 1.0, "kernel": "rbf"}
    assert [h["status"] for h in d["history"]] == ["Queued", "Running", "Completed"]
    assert {a["path"] for a in d["artifacts"]} == {
        "outputs/confusion.png",
        "outputs/predictions.csv",
        "logs/std_log.txt",
    }
    assert [(m["name"], m["version"]) for m in d["models"]] == [("iris-model", 1)]
    assert {k["key"]: (k["kind"], k["numeric"]) for k in d["metric_keys"]} == {
        "accuracy": ("scalar", True),
        "loss": ("scalar", True),
        "kernel": ("scalar", False),
    }
    assert d["scalars"] == {"accuracy": 0.93, "loss": 0.2, "kernel": "rbf"}
    assert d["terminal"] is True
    assert "driver_start" not in d["run"]
    s = ok(ui, f"/api/runs/{seeded['a']}/series?key=accuracy")
    assert s["value"] == [0.5, 0.8, 0.93] and s["step"] == [0, 1, 2]
    newer = ok(ui, f"/api/runs/{seeded['a']}/series?key=accuracy&after={s['last_id'] - 1}")
    assert newer["value"] == [0.93]
    every = ok(ui, f"/api/runs/{seeded['a']}/series")
    assert (
        sorted(every["series"]) == ["accuracy", "loss"] and every["count"] == 6
    )  # the string 'kernel' is not a series
    assert every["series"]["loss"]["value"] == [1.0, 0.4, 0.2] and every["last_id"] >= s["last_id"]
    assert ok(ui, f"/api/runs/{seeded['a']}/series?after={every['last_id']}")["count"] == 0
    assert ok(ui, f"/api/runs/{seeded['a'][:-2]}")["run"]["id"] == seeded["a"]  # a unique prefix works


def test_artifacts_download_image_and_table_preview(ui, seeded):
    from .helpers import png_bytes

    base = f"/api/runs/{seeded['a']}/artifacts/outputs"
    img = get(ui, f"{base}/confusion.png")
    assert img.status == 200 and img.headers["content-type"] == "image/png" and img.body == png_bytes()
    assert img.headers["x-content-type-options"] == "nosniff"
    dl = get(ui, f"{base}/predictions.csv?download=1")
    assert dl.status == 200 and "attachment" in dl.headers["content-disposition"]
    assert dl.body.startswith(b"label,predicted")
    table = ok(ui, f"/api/runs/{seeded['a']}/preview?path=outputs/predictions.csv")
    assert table["kind"] == "table" and table["columns"] == ["label", "predicted"] and table["rows"][1] == ["1", "2"]
    log = ok(ui, f"/api/runs/{seeded['a']}/log")
    assert log["text"] == "epoch 1\nepoch 2\n" and log["next_offset"] == 16


def test_compare_sweep_models_environments_endpoints(ui, seeded):
    cmp = ok(ui, f"/api/compare?runs={seeded['a']},{seeded['b']}")
    assert [r["args"]["kernel"] for r in cmp["runs"]] == ["rbf", "linear"]
    sw = ok(ui, f"/api/sweeps/{seeded['sweep']}")
    assert sw["arguments"] == ["C", "kernel"] and sw["metrics"] == ["accuracy", "loss"]
    assert len(sw["children"]) == 6
    models = ok(ui, "/api/models")
    assert [(m["name"], m["version"]) for m in models] == [("iris-model", 2)]
    versions = ok(ui, "/api/models/iris-model")["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["lineage"]["run"] == seeded["a"] and versions[1]["tags"] == {"data": "v1"}
    assert ok(ui, "/api/environments") == []
    assert ok(ui, "/api/endpoints") == []
    assert "iris" in {e["name"] for e in ok(ui, "/api/experiments")}
    columns = ok(ui, "/api/columns")
    assert {"accuracy", "loss", "kernel"} <= {m["name"] for m in columns["metrics"]}
    assert {a["name"] for a in columns["arguments"]} == {"C", "kernel"}
    assert {"stage", "mltrain.sweep"} <= {t["name"] for t in columns["tags"]}


def test_openapi_documents_every_api_route(ui):
    from mltrain.ui.app import API
    from mltrain.ui.openapi import _path

    doc = ok(ui, "/api/openapi.json")
    assert doc["openapi"].startswith("3.")
    for route in API:
        if "{rest" in route.path:
            continue
        for method in route.methods - {"HEAD"}:
            assert method.lower() in doc["paths"][_path(route.path)], (route.path, method)
    params = {p["name"] for p in doc["paths"]["/api/runs"]["get"]["parameters"]}
    assert {"experiment", "status", "tag", "metric", "sort", "offset", "limit", "parent"} <= params


BAD = [
    ("/api/runs?limit=0", 400, "limit"),
    ("/api/runs?limit=501", 400, "limit"),
    ("/api/runs?limit=ten", 400, "limit"),
    ("/api/runs?offset=-1", 400, "offset"),
    ("/api/runs?status=Sleeping", 400, "status"),
    ("/api/runs?sort=password", 400, "sort"),
    ("/api/runs?sort=metric:", 400, "sort"),
    ("/api/runs?metric=accuracy~1", 400, "metric filter"),
    ("/api/runs?metric=accuracy>high", 400, "number"),
    ("/api/runs?metric=accuracy>nan", 400, "finite"),
    ("/api/runs?parent=../../x", 400, "run id"),
    ("/api/runs?flat=maybe", 400, "flat"),
    ("/api/runs?experiment=" + "x" * 300, 400, "too long"),
    ("/api/runs/bad%20id", 400, "run id"),
    ("/api/runs/20990101_000000_ffffff", 404, "no run"),
    ("/api/runs/2026", 404, "several runs"),
    ("/api/runs/20990101_000000_ffffff/series?key=a", 404, "no run"),
    ("/api/runs/{a}/series?key=loss&after=-5", 400, "after"),
    ("/api/runs/{a}/log?offset=x", 400, "offset"),
    ("/api/runs/{a}/log?limit=99999999", 400, "limit"),
    ("/api/runs/{a}/artifacts/../../mltrain.db", 404, "artifact"),
    ("/api/runs/{a}/artifacts/outputs/missing.png", 404, "artifact"),
    ("/api/runs/{a}/preview", 400, "path"),
    ("/api/runs/{a}/preview?path=outputs/confusion.png", 400, "preview"),
    ("/api/runs/{a}/preview?path=outputs/nothing.csv", 404, "artifact"),
    ("/api/compare", 400, "run ids"),
    ("/api/compare?runs=" + ",".join(["x"] * 21), 400, "run ids"),
    ("/api/compare?runs=a;b", 400, "run id"),
    ("/api/sweeps/{a}", 404, "not a sweep"),
    ("/api/models/bad name", 400, "name"),
    ("/api/models/nosuchmodel", 404, "no model"),
    ("/api/endpoints/nosuch/metrics", 404, "no endpoint"),
    ("/api/runs/{a}/series?fields=step,bogus", 400, "fields"),
    ("/api/nothing/here", 404, "no API route"),
    ("/api/runs?" + "x=1&" * 2000, 414, "too long"),
]


@pytest.mark.parametrize(("path", "status", "words"), BAD)
def test_bad_parameters_get_a_4xx_json_error(ui, seeded, path, status, words):
    resp = get(ui, path.replace("{a}", seeded["a"]).replace(" ", "%20"))
    assert resp.status == status, (resp.status, resp.body[:300])
    body = resp.json()
    assert words in body["error"] + (body.get("hint") or ""), body


NASTY = ["", "-1", "0", "99999999999999999999", "1e309", "nan", "%00", "x" * 300, "../../etc/passwd",
         "'; drop table runs; --", "%E2%88%9E", "[]", "a,b,,", ">", "metric:", "-metric:x",
         "accuracy>=", "=1"]  # fmt: skip


def test_no_parameter_value_makes_a_500(ui, seeded):
    """Every query parameter of every documented GET route, with hostile values: 2xx or 4xx, never 5xx."""
    from urllib.parse import quote

    doc = ok(ui, "/api/openapi.json")
    checked = 0
    for path, ops in doc["paths"].items():
        if "get" not in ops or path.endswith("/events"):
            continue
        concrete = (
            path.replace("{run_id}", seeded["a"]).replace("{name}", "iris-model").replace("{path}", "outputs/x.csv")
        )
        for param in [p["name"] for p in ops["get"]["parameters"] if p["in"] == "query"]:
            for value in NASTY:
                resp = get(ui, f"{concrete}?{param}={quote(value, safe='%')}")
                assert resp.status < 500, (concrete, param, value, resp.body[:200])
                if resp.status >= 400:
                    assert "error" in resp.json()
                checked += 1
    assert checked > 200


def test_oversized_headers_are_refused(ui):
    import socket

    with socket.create_connection(("127.0.0.1", ui.port), timeout=30) as sock:
        sock.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        answer = sock.recv(200)
    assert answer.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")), answer
    assert get(ui, "/api/info").status == 200  # and the server keeps serving


def test_host_header_of_another_site_is_refused(ui):
    resp = get(ui, "/api/runs", headers={"Host": "attacker.example:8765"})
    assert resp.status == 400 and "Host" in resp.json()["error"]
    assert get(ui, "/api/runs", headers={"Host": f"localhost:{ui.port}"}).status == 200


def post(
    server: Any,
    path: str,
    body: Any,
    token: str | None = None,
    raw: bytes | None = None,
    ctype: str = "application/json",
) -> Any:
    headers = {"Content-Type": ctype}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return request(server.url, "POST", path, raw if raw is not None else json.dumps(body).encode(), headers)


def test_writes_need_allow_write_and_the_token(tmp_path):
    from mltrain.workspace.runs import RUNNING

    from .helpers import seed

    root = tmp_path / "ws"
    seeded = seed(root)
    ws = open_ws(root)
    ws.runs.create("20260102_000000_active", "live", script="train.py")
    ws.runs.set_status("20260102_000000_active", RUNNING)
    with serving(root) as ro:
        resp = post(ro, "/api/runs/20260102_000000_active/cancel", {}, TOKEN)
        assert resp.status == 403 and "--allow-write" in resp.json()["hint"]
    with serving(root, allow_write=True, token=TOKEN) as rw:
        cancel = "/api/runs/20260102_000000_active/cancel"
        assert post(rw, cancel, {}).status == 401
        assert post(rw, cancel, {}, "wrong-token-0123456789").status == 401
        assert ws.runs.get("20260102_000000_active")["cancel_requested"] is False
        done = post(rw, cancel, {}, TOKEN)
        assert done.status == 200 and done.json()["cancel_requested"] is True
        assert ws.runs.get("20260102_000000_active")["cancel_requested"] is True
        assert post(rw, f"/api/runs/{seeded['a']}/cancel", {}, TOKEN).status == 409  # already ended

        alias = "/api/models/iris-model/aliases"
        assert post(rw, alias, {"version": 1, "alias": "production"}).status == 401
        assert registry(ws).get("iris-model:1").aliases == []
        assert post(rw, alias, {"version": 1, "alias": "production"}, TOKEN).status == 200
        assert registry(ws).get("iris-model@production").version == 1
        assert post(rw, alias, {"version": 2, "alias": "gone"}, TOKEN).status == 200
        remove = "/api/models/iris-model/aliases/gone"
        assert request(rw.url, "DELETE", remove).status == 401
        removed = request(rw.url, "DELETE", remove, headers={"Authorization": f"Bearer {TOKEN}"})
        assert removed.status == 200 and removed.json() == {"name": "iris-model", "alias": "gone", "version": 2}
        assert registry(ws).get("iris-model:2").aliases == []
        again = request(rw.url, "DELETE", remove, headers={"Authorization": f"Bearer {TOKEN}"})
        assert again.status == 404 and "no alias 'gone'" in again.json()["error"]
        for bad in (
            {"version": "1", "alias": "x"},
            {"version": 1, "alias": "no spaces"},
            {"version": 0, "alias": "x"},
            [],
        ):
            assert post(rw, alias, bad, TOKEN).status == 400, bad
        assert post(rw, alias, {"version": 9, "alias": "x"}, TOKEN).status == 404
        assert post(rw, alias, None, TOKEN, raw=b"{not json").status == 400
        assert post(rw, alias, None, TOKEN, raw=b"version=1", ctype="application/x-www-form-urlencoded").status == 415
        assert post(rw, alias, None, TOKEN, raw=b'{"a": "' + b"x" * 20000 + b'"}').status == 413

        archive = "/api/models/iris-model/versions/2/archive"
        assert post(rw, archive, {"archived": True}).status == 401
        assert post(rw, archive, {"archived": True}, TOKEN).status == 200
        assert registry(ws).get("iris-model:2").archived is True
        assert post(rw, archive, {"archived": "yes"}, TOKEN).status == 400
        assert post(rw, "/api/models/iris-model/versions/7/archive", {}, TOKEN).status == 404
    ws.db.dispose()


def test_a_token_guards_reads_off_loopback(seeded):
    """Served on a non-loopback address every request needs the token (exercised here on loopback
    with the same settings); a page opened with ?token= keeps it in a cookie."""
    with serving(seeded["root"], token=TOKEN, read_token=True) as server:
        assert get(server, "/api/runs").status == 401
        assert get(server, "/").status == 401
        assert get(server, "/api/runs", {"Authorization": "Bearer nope-nope-nope-nope"}).status == 401
        assert get(server, "/api/runs", {"Authorization": f"Bearer {TOKEN}"}).status == 200
        login = get(server, f"/models?token={TOKEN}")
        assert login.status == 303 and login.headers["location"] == "/models"
        kept = get(server, f"/compare?runs=a%2Cb&token={TOKEN}&x=%0D%0Aevil:1")
        assert kept.headers["location"] == "/compare?runs=a%2Cb&x=%0D%0Aevil%3A1" and "evil" not in kept.headers
        assert get(server, f"//attacker.example/x?token={TOKEN}").headers["location"] == "/attacker.example/x"
        cookie = login.headers["set-cookie"].split(";")[0]
        assert "httponly" in login.headers["set-cookie"].lower()
        assert get(server, "/api/runs", {"Cookie": cookie}).status == 200


def test_cli_refuses_a_non_loopback_address_without_token(cli):
    proc = cli("ui", "--host", "10.11.12.13", "--port", "0")
    assert proc.returncode == 2 and "needs a token" in proc.stderr, proc.output
    proc = cli("ui", "--token", "short")
    assert proc.returncode == 2 and "at least 16" in proc.stderr, proc.output


def test_live_events_send_new_points_log_and_status_until_the_run_ends(tmp_path):
    from mltrain.workspace.runs import COMPLETED

    root = tmp_path / "ws"
    ws, run_dir = running_run(root, "20260103_000000_live00", "first line\n")
    ws.metrics.add("20260103_000000_live00", [{"t": 1.0, "k": "loss", "v": 1.0, "s": 0}])
    with serving(root, poll_interval=0.1) as server:
        so_far = get(server, "/api/runs/20260103_000000_live00/series").json()
        assert so_far["series"]["loss"]["value"] == [1.0]
        path = f"/api/runs/20260103_000000_live00/events?after={so_far['last_id']}&offset=0"
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", path)
        resp = conn.getresponse()
        first = resp.readline()
        assert first.startswith(b"retry:")
        ws.metrics.add(
            "20260103_000000_live00", [{"t": 2.0, "k": "loss", "v": 0.5, "s": 1}, {"t": 2.0, "k": "acc", "v": 0.7}]
        )
        with open(run_dir / "logs" / "std_log.txt", "a") as f:
            f.write("second line\n")
        time.sleep(0.5)
        ws.runs.set_status("20260103_000000_live00", COMPLETED)
        body = b""
        while b"event: end" not in body or not body.endswith(b"\n\n"):
            chunk = resp.readline()
            assert chunk, body
            body += chunk
        conn.close()
    blocks = [b.strip(b"\n") for b in body.split(b"\n\n")]
    events = [
        (b.split(b"\n")[0][7:].decode(), json.loads(b.split(b"\ndata: ")[1]))
        for b in blocks
        if b.startswith(b"event: ")
    ]
    names = [n for n, _ in events]
    assert names[0] == "status" and names[-1] == "end"
    points = [e for n, e in events if n == "metrics"]
    series = {k: v for e in points for k, v in e["series"].items()}
    assert series["loss"]["value"] == [0.5] and series["loss"]["step"] == [1]
    assert series["acc"]["value"] == [0.7]
    text = "".join(e["text"] for n, e in events if n == "log")
    assert text == "first line\nsecond line\n"
    assert [e["status"] for n, e in events if n == "status"] == ["Running", "Completed"]
    ws.db.dispose()


def test_mltrain_ui_serves_until_interrupted(seeded):
    with start_ui(seeded["root"], "--allow-write") as ui:
        url = ui.url
        token = next(line.split(": ", 1)[1].strip() for line in ui.output.splitlines() if "token for write" in line)
        assert request(url, "GET", "/api/runs").json()["total"] == 4
        assert request(url, "GET", "/").body.startswith(b"<!doctype html>")
        body = json.dumps({"version": 2, "alias": "cli"}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        alias = request(url, "POST", "/api/models/iris-model/aliases", body, headers)
        assert alias.status == 200 and alias.json()["aliases"] == ["cli"]
