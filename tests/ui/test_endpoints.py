"""The endpoints pages against a real scoring server (mltrain.serving on uvicorn, 127.0.0.1): state,
scoring URI, request figures read from its /metrics with the key, a test request, the input schema, the
server log, and in Chromium the Test, Consume, Logs and Monitoring tabs; the key is never stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from serving.helpers import PRIMARY_KEY, SECONDARY_KEY, InProcessServer, sha256_hex, write_keys
from support import request

from .helpers import open_ws, serving


@pytest.fixture
def scoring(tmp_path):
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from mltrain.serving import create_app

    x, y = load_iris(return_X_y=True)
    path = tmp_path / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=300).fit(x, y), path)
    keys = tmp_path / "keys.json"
    write_keys(keys, PRIMARY_KEY, SECONDARY_KEY)
    app = create_app({"model_path": str(path), "model_sha256": sha256_hex(path.read_bytes()), "model_name": "iris",
                      "auth": True, "keys_file": str(keys)})  # fmt: skip
    server = InProcessServer(app)
    yield server
    server.stop()


def _endpoint(root, scoring):
    """A workspace at ``root`` with endpoint iris-ep recorded as this process serving ``scoring``, and
    its server log in the endpoint's folder."""
    from mltrain.deploy.steps import endpoints_root
    from mltrain.remote.procs import hostname, start_token
    from mltrain.workspace.endpoints import EndpointStore

    ws = open_ws(root)
    EndpointStore(ws).save("iris-ep", model_name="iris", model_version=1, target="local", state="Running",
                           uri=scoring.url, auth=True, machine=hostname(), pid=os.getpid(),
                           pid_start=start_token(os.getpid()), cpu=1.0, workers=1)  # fmt: skip
    log = endpoints_root(ws) / "iris-ep" / "server.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"server line {i}\n" for i in range(5000)))
    return ws


def test_endpoint_state_uri_and_request_figures_from_its_metrics(tmp_path, scoring):
    from mltrain.workspace.endpoints import EndpointStore

    root = tmp_path / "ws"
    ws = _endpoint(root, scoring)
    body = json.dumps({"data": [[5.1, 3.5, 1.4, 0.2]]}).encode()
    auth = {"Authorization": f"Bearer {PRIMARY_KEY}", "Content-Type": "application/json"}
    for _ in range(3):
        assert request(scoring.url, "POST", "/score", body, auth).status == 200
    with serving(root) as ui:
        [ep] = request(ui.url, "GET", "/api/endpoints").json()
        assert ep["state"] == "Running" and ep["scoring_uri"] == f"{scoring.url}/score" and ep["auth"] is True
        assert "primary_key_sha256" not in ep
        path = "/api/endpoints/iris-ep/metrics"
        without = request(ui.url, "GET", path)
        assert without.status == 401 and "key" in without.json()["error"]
        wrong = request(ui.url, "GET", path, headers={"X-Endpoint-Key": "not-the-key-at-all"})
        assert wrong.status == 401 and "refused" in wrong.json()["error"]
        m = request(ui.url, "GET", path, headers={"X-Endpoint-Key": SECONDARY_KEY}).json()
        assert (
            m["score_requests_total"] == 3 and m["predictions_total"] == 3 and m["errors_total"] == 1
        )  # the wrong key
        assert 0 < m["latency_mean_s"] < 60 and m["latency_p50_s"] is not None
    assert SECONDARY_KEY not in json.dumps(EndpointStore(ws).list())  # nothing of the key was stored
    ws.db.dispose()


def test_endpoint_detail_test_request_input_schema_and_log(tmp_path, scoring):
    from mltrain.deploy.steps import endpoints_root

    root = tmp_path / "ws"
    ws = _endpoint(root, scoring)
    with serving(root) as ui:
        ep = request(ui.url, "GET", "/api/endpoints/iris-ep").json()
        assert ep["reachable"] is True and ep["aliases"] == []  # no model iris in this registry
        assert ep["input_schema"]["example"] == {"data": [[0.0, 0.0, 0.0, 0.0]]}
        body = json.dumps({"data": [[5.1, 3.5, 1.4, 0.2]]}).encode()
        score = "/api/endpoints/iris-ep/score"
        ctype = {"Content-Type": "application/json"}
        answer = request(ui.url, "POST", score, body, {**ctype, "X-Endpoint-Key": PRIMARY_KEY}).json()
        assert answer["status"] == 200 and answer["body"]["predictions"] == [0] and answer["took_ms"] > 0
        refused = request(ui.url, "POST", score, body, {**ctype, "X-Endpoint-Key": "not-the-key-at-all"}).json()
        assert refused["status"] == 401  # the endpoint's own answer, passed on
        without = request(ui.url, "POST", score, body, ctype)
        assert without.status == 401 and "key" in without.json()["error"]
        log = request(ui.url, "GET", "/api/endpoints/iris-ep/logs?tail=100").json()
        assert log["text"].endswith("server line 4999\n") and len(log["text"]) == 100 and log["size"] > 50_000
        secret = tmp_path / "secret.txt"
        secret.write_text("not for the dashboard")
        linked = endpoints_root(ws) / "iris-ep" / "server.log"
        linked.unlink()
        linked.symlink_to(secret)  # a log replaced by a link: never followed
        resp = request(ui.url, "GET", "/api/endpoints/iris-ep/logs")
        assert resp.status == 409 and "not for the dashboard" not in resp.body.decode()
    ws.db.dispose()


def test_endpoint_page_tests_consumes_monitors_and_never_stores_the_key(tmp_path, scoring, page, console_errors):
    from mltrain.workspace.endpoints import EndpointStore

    root = tmp_path / "ws"
    ws = _endpoint(root, scoring)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url))
    body = json.dumps({"data": [[5.1, 3.5, 1.4, 0.2]]}).encode()
    auth = {"Authorization": f"Bearer {PRIMARY_KEY}", "Content-Type": "application/json"}
    with serving(root) as ui:
        page.goto(f"{ui.url}/endpoints/iris-ep")
        page.locator("#endpoint-key").wait_for()
        page.fill("#endpoint-key", PRIMARY_KEY)
        page.click("button[data-tab=Test]")
        assert json.loads(page.input_value("#test-body")) == {"data": [[0.0, 0.0, 0.0, 0.0]]}  # the schema's example
        page.fill("#test-body", json.dumps({"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}))
        page.click("#test-send")
        page.locator("#test-answer").wait_for()
        assert page.locator("#test-status").inner_text() == "HTTP 200"
        assert json.loads(page.locator("#test-answer").inner_text()) == {"predictions": [0, 2]}
        page.click("button[data-tab=Consume]")
        curl = page.locator("#snippet-curl").inner_text()
        python = page.locator("#snippet-python").inner_text()
        assert f"{scoring.url}/score" in curl and "$ENDPOINT_KEY" in curl and PRIMARY_KEY not in curl + python
        env = {**os.environ, "ENDPOINT_KEY": PRIMARY_KEY}  # the snippets work as they are
        ran = subprocess.run(["bash", "-c", curl], env=env, capture_output=True, text=True, timeout=60)
        assert json.loads(ran.stdout) == {"predictions": [0]}, ran.stderr
        ran = subprocess.run([sys.executable, "-c", python], env=env, capture_output=True, text=True, timeout=60)
        assert ran.stdout.strip() == "[0]", ran.stderr
        page.click("button[data-tab=Logs]")
        page.wait_for_function("() => document.querySelector('#endpoint-log').textContent.includes('server line 4999')")
        page.click("button[data-tab=Monitoring]")
        page.click("#monitor")
        page.locator("#ep-figures dl").wait_for()
        for _ in range(3):
            assert request(scoring.url, "POST", "/score", body, auth).status == 200
        page.locator(".chart[data-key=rate][data-drawn]").wait_for(timeout=30_000)  # the second reading
        page.wait_for_function("() => document.querySelector('.chart[data-key=latency]').dataset.drawn === '1'")
        figure = "document.querySelector('#ep-figures dd').textContent"
        page.wait_for_function(f"() => {figure} === '6'")  # scoring requests: the test tab, 2 snippets, 3 more
        page.click("#monitor")  # stop
        # the key stayed in the page: not in storage, cookies, the address or any URL asked for
        kept = page.evaluate("JSON.stringify([localStorage, sessionStorage, document.cookie, location.href])")
        assert PRIMARY_KEY not in kept
        assert all(PRIMARY_KEY not in c["value"] for c in page.context.cookies())
        assert sent and all(PRIMARY_KEY not in url for url in sent)
    assert PRIMARY_KEY not in json.dumps(EndpointStore(ws).list(), default=str)
    ws.db.dispose()
    assert console_errors == []
