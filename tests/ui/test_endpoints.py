"""The endpoints page's API against a real scoring server (mltrain.serving on uvicorn, 127.0.0.1):
state, scoring URI, and request figures read from its /metrics with the key, which is never stored."""

from __future__ import annotations

import json
import os

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


def test_endpoint_state_uri_and_request_figures_from_its_metrics(tmp_path, scoring):
    from mltrain.deploy.store import EndpointStore
    from mltrain.remote.procs import hostname, start_token

    root = tmp_path / "ws"
    ws = open_ws(root)
    EndpointStore(ws).save("iris-ep", model_name="iris", model_version=1, target="local", state="Running",
                           uri=scoring.url, auth=True, machine=hostname(), pid=os.getpid(),
                           pid_start=start_token(os.getpid()), cpu=1.0, workers=1)  # fmt: skip
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
