"""The dashboard under abuse, served by uvicorn on 127.0.0.1: floods of idle and dripping connections,
a 2-million-point series, a log offset past any file, a race for the live-stream slots, metric names of
10,000 characters, the read cookie seen by a page on another port (Chromium), the token kept out of the
command line, and an endpoint key never sent to an address the dashboard was not told to trust."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support import request

from .helpers import TOKEN, finished_run, open_ws, running_run, serving, start_ui

IDLE, HEADS, BODIES = 100, 100, 300  # sockets: in all, and bodies alone, more than the connection limit (256)
BEARER = {"Authorization": f"Bearer {TOKEN}"}


# -- 8: idle and dripping connections ------------------------------------------------------------------
def test_idle_and_dripping_connections_do_not_lock_out_normal_requests(seeded):
    """Hundreds of connections on a token-protected dashboard, idle, sending a request head a line at a
    time, or sending a request body a byte at a time: normal requests are still answered."""
    with serving(seeded["root"], token=TOKEN, read_token=True) as ui:

        def connect(first: bytes) -> socket.socket:
            s = socket.create_connection(("127.0.0.1", ui.port), timeout=5)
            s.sendall(first)
            return s

        idle = [connect(b"") for _ in range(IDLE)]
        heads = [connect(b"GET /api/runs HTTP/1.1\r\n") for _ in range(HEADS)]
        bodies = [connect(b"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n")
                  for _ in range(BODIES)]  # fmt: skip
        stop = threading.Event()

        def drip() -> None:
            while not stop.is_set():
                for group, data in ((heads, b"X-Slow: 1\r\n"), (bodies, b"x")):
                    for s in group:
                        try:
                            s.send(data)
                        except OSError:
                            pass
                stop.wait(0.5)

        dripper = threading.Thread(target=drip)
        dripper.start()
        try:
            time.sleep(1.0)  # the flood is in place
            answers = [request(ui.url, "GET", "/api/runs", headers=BEARER) for _ in range(5)]
            assert [a.status for a in answers] == [200] * 5, answers[0].body[:200]
            assert answers[0].json()["total"] == 4
            assert request(ui.url, "GET", "/api/runs").status == 401  # and the token is still needed
        finally:
            stop.set()
            dripper.join(30)
            for s in idle + heads + bodies:
                s.close()


# -- 9: a series of millions of points -----------------------------------------------------------------
BIG_POINTS = 2_000_000
LOW_AT, HIGH_AT = 777_777, 1_234_567


def _big_series(root: Path) -> str:
    """A run whose 'loss' has BIG_POINTS points (step i, a smooth curve with one dip to -5 and one spike
    to 5), inserted by the store's own SQL, and a short 'acc' series."""
    ws = open_ws(root)
    run_id = finished_run(ws, "20260104_000000_big000", "big", {}, {"acc": [0.1, 0.2, 0.3]})
    with ws.db.write() as conn:
        conn.exec_driver_sql(
            "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < ?) "
            "INSERT INTO metrics (run_id, key, kind, value, step, ts) SELECT ?, 'loss', 'scalar', "
            "CASE i WHEN ? THEN -5.0 WHEN ? THEN 5.0 ELSE 1.0 / (i + 1) END, i, 1000.0 + i FROM c",
            (BIG_POINTS - 1, run_id, LOW_AT, HIGH_AT),
        )
    ws.db.dispose()
    return run_id


def test_a_series_of_millions_of_points_is_downsampled_on_the_server(tmp_path):
    root = tmp_path / "ws"
    run_id = _big_series(root)
    with serving(root) as ui:
        path = f"/api/runs/{run_id}/series?key=loss"
        for query, cap in (("", 4000), ("&points=1000", 1000)):
            resp = request(ui.url, "GET", path + query)
            assert resp.status == 200, resp.body[:300]
            assert len(resp.body) < 60 * cap, len(resp.body)  # a few dozen bytes a point, not hundreds of MB
            s = resp.json()
            assert s["downsampled"] is True and 0 < len(s["value"]) <= cap
            assert len(s["step"]) == len(s["ts"]) == len(s["value"])
            assert s["step"] == sorted(s["step"])  # in logging order
            points = dict(zip(s["step"], s["value"], strict=True))
            assert points[0] == 1.0 and points[BIG_POINTS - 1] == 1.0 / BIG_POINTS  # the first and last points
            assert points[LOW_AT] == -5.0 and points[HIGH_AT] == 5.0  # the true min and max, where they were
            assert min(s["value"]) == -5.0 and max(s["value"]) == 5.0
        short = request(ui.url, "GET", f"/api/runs/{run_id}/series?key=acc").json()
        assert short["value"] == [0.1, 0.2, 0.3] and short["downsampled"] is False
        too_many = request(ui.url, "GET", path + "&points=100000000")
        assert too_many.status == 400 and "points" in too_many.json()["error"]


# -- 10: a log offset past any file --------------------------------------------------------------------
def test_a_log_offset_past_any_file_is_a_400_and_the_stream_still_works(tmp_path):
    root = tmp_path / "ws"
    run_id = "20260105_000000_live00"
    ws, _ = running_run(root, run_id, "first line\n")
    with serving(root, poll_interval=0.1) as ui:
        for path in (f"/api/runs/{run_id}/log?offset=4611686018427387904",
                     f"/api/runs/{run_id}/events?offset=4611686018427387904"):  # fmt: skip
            resp = request(ui.url, "GET", path)
            assert resp.status == 400, (path, resp.status, resp.body[:300])
            assert "offset" in resp.json()["error"]
        assert request(ui.url, "GET", f"/api/runs/{run_id}/log?offset=1000000").json()["text"] == ""  # past the end
        conn = http.client.HTTPConnection("127.0.0.1", ui.port, timeout=30)
        conn.request("GET", f"/api/runs/{run_id}/events?offset=6")
        resp = conn.getresponse()
        assert resp.status == 200
        body = b""
        while b"event: log" not in body:
            body += resp.readline()
        body += resp.readline()
        assert json.loads(body.split(b"event: log\ndata: ")[1])["text"] == "line\n"
        conn.close()
    ws.db.dispose()


# -- 11: live-stream slots -----------------------------------------------------------------------------
def _open_streams(port: int, path: str, count: int) -> tuple[list[socket.socket], list[int]]:
    """``count`` requests for ``path`` sent at once, each on its own connection: the sockets and statuses."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    for s in socks:
        s.sendall(head)
    statuses = []
    for s in socks:
        line = s.makefile("rb").readline()
        statuses.append(int(line.split()[1]) if line else 0)
    return socks, statuses


def test_no_more_live_streams_than_the_limit_are_accepted(tmp_path):
    """Rounds of 120 stream requests at once: exactly the limit (32) get a stream, the others a 429; once
    the streams are closed their slots are free again."""
    root = tmp_path / "ws"
    run_id = "20260106_000000_live00"
    running_run(root, run_id)[0].db.dispose()
    wanted, limit, path = 120, 32, f"/api/runs/{run_id}/events"
    with serving(root, poll_interval=0.2) as ui:
        for _ in range(3):
            socks, statuses = _open_streams(ui.port, path, wanted)
            accepted = statuses.count(200)
            for s in socks:
                s.close()
            assert accepted == limit and statuses.count(429) == wanted - limit, statuses
            deadline = time.monotonic() + 30  # the slots are given back once the server sees the streams closed
            while True:
                socks, statuses = _open_streams(ui.port, path, limit)
                for s in socks:
                    s.close()
                if statuses == [200] * limit or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert statuses == [200] * limit
            time.sleep(1.0)  # and those are closed too


# -- 12: long metric names -----------------------------------------------------------------------------
LONG_KEY = "k" * 10_000
MID_KEY = "accuracy_" + "m" * 300


@pytest.fixture(scope="module")
def long_keys(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("long") / "ws"
    ws = open_ws(root)
    a = finished_run(
        ws, "20260107_000001_long00", "long", {"C": 1}, {LONG_KEY: [0.1, 0.5], MID_KEY: [1, 2], "loss": [3, 2]}
    )
    b = finished_run(ws, "20260107_000002_long00", "long", {"C": 2}, {LONG_KEY: [0.2, 0.6], "loss": [4, 1]})
    sweep = finished_run(ws, "20260107_000003_sweep0", "long", {}, {})
    children = [
        finished_run(ws, f"20260107_00001{i}_child{i}", "long", {"C": i}, {LONG_KEY: [i, i + 1]}, parent=sweep)
        for i in range(3)
    ]
    ws.db.dispose()
    return {"root": root, "a": a, "b": b, "sweep": sweep, "children": children}


def test_compare_series_of_runs_with_metric_names_of_10000_characters(long_keys):
    with serving(long_keys["root"]) as ui:
        resp = request(ui.url, "GET", f"/api/compare/series?runs={long_keys['a']},{long_keys['b']}&points=500")
        assert resp.status == 200, resp.body[:300]
        series = resp.json()["runs"]
        assert series[long_keys["a"]][LONG_KEY]["value"] == [0.1, 0.5]
        assert series[long_keys["b"]][LONG_KEY]["value"] == [0.2, 0.6]
        assert series[long_keys["a"]][MID_KEY]["step"] == [0, 1]


def test_compare_and_sweep_views_draw_metrics_with_names_of_10000_characters(long_keys, page, console_errors):
    with serving(long_keys["root"]) as ui:
        page.goto(f"{ui.url}/compare?runs={long_keys['a']},{long_keys['b']}")
        page.wait_for_function("() => document.querySelectorAll('.chart[data-drawn]').length === 3")
        keys = page.locator(".chart[data-drawn]").evaluate_all("els => els.map(e => e.dataset.key)")
        assert keys == [MID_KEY, LONG_KEY, "loss"]
        assert page.locator("#flash").is_hidden()
        page.goto(f"{ui.url}/compare?sweep={long_keys['sweep']}")
        page.wait_for_function("() => document.querySelectorAll('.chart[data-drawn]').length === 1")
        assert page.locator(".chart[data-drawn] .u-legend .u-series").count() == 1 + 3  # x + three runs
        assert page.locator("#flash").is_hidden()
    assert console_errors == []


# -- 13: the token ---------------------------------------------------------------------------------------
class CookieCatcher:
    """A plain HTTP server on 127.0.0.1 (another port) that records the Cookie headers it receives."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        seen = self.cookies = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                seen.append(self.headers.get("Cookie") or "")
                body = b"<!doctype html><title>other</title><p>another site on this host</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_read_cookie_seen_by_another_port_is_not_the_write_token(seeded, page):
    from .helpers import seed

    root = seeded["root"].parent / "cookie-ws"
    seed(root)
    other = CookieCatcher()
    try:
        with serving(root, token=TOKEN, read_token=True, allow_write=True) as ui:
            page.goto(f"{ui.url}/models?token={TOKEN}")
            page.locator("main h1").wait_for()
            assert page.url == f"{ui.url}/models"  # signed in: the cookie reads the dashboard
            page.goto(f"{other.url}/")
            page.locator("p").wait_for()
            cookie = other.cookies[0]
            assert cookie and set(other.cookies) == {cookie}, "the browser sends this host's cookies to every port"
            assert TOKEN not in cookie
            body = json.dumps({"version": 1, "alias": "stolen"}).encode()
            for value in (v.split("=", 1)[1] for v in cookie.split("; ")):
                headers = {"Content-Type": "application/json", "Authorization": f"Bearer {value}"}
                assert request(ui.url, "POST", "/api/models/iris-model/aliases", body, headers).status == 401
                headers["Cookie"] = cookie
                assert request(ui.url, "POST", "/api/models/iris-model/aliases", body, headers).status == 401
            port_of = {re.sub(r"\D", "", c.split("=")[0]) for c in cookie.split("; ")}
            assert port_of == {str(ui.port)}  # its name carries the dashboard's port
    finally:
        other.close()


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@pytest.mark.parametrize("how", ["file", "env"])
def test_the_token_from_a_file_or_the_environment_stays_out_of_the_command_line(seeded, tmp_path, how):
    secret = "file-token-" + os.urandom(12).hex()
    token_file = tmp_path / "ui_token"
    token_file.write_text(secret + "\n")
    token_file.chmod(0o600)
    args = ["--token-file", str(token_file)] if how == "file" else []
    env = {"MLTRAIN_UI_TOKEN": secret} if how == "env" else {}
    with start_ui(seeded["root"], "--allow-write", *args, env=env) as ui:
        assert secret not in _cmdline(ui.proc.pid)
        assert secret not in ui.output  # not printed either: the user chose it
        body = json.dumps({"version": 1, "alias": f"by-{how}"}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {secret}"}
        assert request(ui.url, "POST", "/api/models/iris-model/aliases", body, headers).status == 200
        headers["Authorization"] = "Bearer not-the-token-at-all"
        assert request(ui.url, "POST", "/api/models/iris-model/aliases", body, headers).status == 401


def test_a_token_on_the_command_line_gets_a_warning(seeded):
    with start_ui(seeded["root"], "--allow-write", "--token", TOKEN) as ui:
        pass
    assert "--token-file" in ui.stderr and "ps" in ui.stderr


def test_a_missing_or_empty_token_file_is_an_error(cli, tmp_path):
    proc = cli("ui", "--token-file", str(tmp_path / "nothing"))
    assert proc.returncode == 2 and f"cannot read the token file {tmp_path / 'nothing'}" in proc.stderr, proc.output
    (tmp_path / "empty").write_text("\n")
    proc = cli("ui", "--token-file", str(tmp_path / "empty"))
    assert proc.returncode == 2 and f"the token file {tmp_path / 'empty'} is empty" in proc.stderr, proc.output


# -- 14: the endpoint key --------------------------------------------------------------------------------
def _loopback_alias() -> str:
    """A host name that /etc/hosts maps to a loopback address (not 'localhost'): a name, not an address."""
    for line in Path("/etc/hosts").read_text().splitlines():
        parts = line.split("#")[0].split()
        if len(parts) >= 2 and parts[0].startswith("127."):
            for name in parts[1:]:
                if name not in ("localhost", "localhost.localdomain") and "." not in name:
                    return name
    pytest.skip("no host name maps to a loopback address in /etc/hosts")


class MetricsListener:
    """A raw TCP listener on 127.0.0.1 that records every request and answers a tiny /metrics."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(65536)
                self.received.append(data)
                body = b"mltrain_requests_total 0\n"
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n%s" % (len(body), body))  # fmt: skip

    def close(self) -> None:
        self.sock.close()


def test_the_endpoint_key_goes_only_to_loopback_or_configured_hosts(tmp_path):
    from mltrain.workspace.endpoints import EndpointStore

    name = _loopback_alias()
    listener = MetricsListener()
    root = tmp_path / "ws"
    ws = open_ws(root)
    EndpointStore(ws).save("far-ep", model_name="iris", model_version=1, target="local", state="Running",
                           uri=f"http://{name}:{listener.port}", auth=True, cpu=1.0, workers=1)  # fmt: skip
    key = "endpoint-key-" + os.urandom(8).hex()
    try:
        with serving(root) as ui:
            resp = request(ui.url, "GET", "/api/endpoints/far-ep/metrics", headers={"X-Endpoint-Key": key})
            assert resp.status == 403, resp.body[:300]
            err = resp.json()
            assert name in err["error"] and "--endpoint-host" in err["hint"]
            body = json.dumps({"data": [[1, 2]]}).encode()
            headers = {"X-Endpoint-Key": key, "Content-Type": "application/json"}
            assert request(ui.url, "POST", "/api/endpoints/far-ep/score", body, headers).status == 403
            detail = request(ui.url, "GET", "/api/endpoints/far-ep").json()  # its input schema is not asked for
            assert detail["reachable"] is False and "--endpoint-host" in detail["unreachable_reason"]
        assert listener.received == []  # nothing was sent, not even a connection
        with serving(root, endpoint_hosts=(name,)) as ui:
            resp = request(ui.url, "GET", "/api/endpoints/far-ep/metrics", headers={"X-Endpoint-Key": key})
            assert resp.status == 200, resp.body[:300]
        assert len(listener.received) == 1 and key.encode() in listener.received[0]
    finally:
        listener.close()
        ws.db.dispose()
