"""Health, metrics and the OpenAPI document."""

from __future__ import annotations

import re

from .helpers import PRIMARY_KEY

ROW = [5.1, 3.5, 1.4, 0.2]


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(f"{name}{{{want}}}" if labels else name) + r" ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_health(svc_server):
    live = svc_server.get("/health/live")
    assert live.status == 200
    assert live.json()["status"] == "alive"
    ready = svc_server.get("/health/ready")
    assert ready.status == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["version"] == "3"


def test_metrics_count_requests_errors_latency_and_predictions(svc_server):
    before = svc_server.get("/metrics", key=PRIMARY_KEY)
    assert before.status == 200
    assert before.headers["content-type"].startswith("text/plain")
    assert svc_server.score({"data": [ROW, ROW, ROW]}).status == 200
    assert svc_server.score({"data": [[1, 2]]}).status == 400
    after = svc_server.get("/metrics", key=PRIMARY_KEY).body.decode()
    old = before.body.decode()
    for name, labels, delta in [
        ("mltrain_requests_total", {"path": "/score", "status": "200"}, 1),
        ("mltrain_requests_total", {"path": "/score", "status": "400"}, 1),
        ("mltrain_errors_total", {"kind": "bad_request"}, 1),
        ("mltrain_predictions_total", {"method": "predict"}, 3),
        ("mltrain_request_duration_seconds_count", {"path": "/score"}, 2),
        ("mltrain_requests_total", {"path": "/metrics", "status": "200"}, 1),
    ]:
        assert _metric(after, name, **labels) - _metric(old, name, **labels) == delta, (name, labels)
    assert _metric(after, "mltrain_request_duration_seconds_sum", path="/score") > 0
    assert _metric(after, "mltrain_request_duration_seconds_bucket", path="/score", le="+Inf") == _metric(
        after, "mltrain_request_duration_seconds_count", path="/score"
    )
    assert 'mltrain_model_info{endpoint="ep-iris_svc",model="iris_svc",version="3"} 1' in after


def test_swagger_describes_the_model(svc_server, svc_file):
    resp = svc_server.get("/swagger.json")
    assert resp.status == 200
    doc = resp.json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["version"] == "3"
    assert "iris_svc:3" in doc["info"]["description"]
    request = doc["components"]["schemas"]["ScoreRequest"]
    array_rows, object_rows = request["properties"]["data"]["oneOf"]  # every row of a request in one form
    array_row, object_row = array_rows["items"], object_rows["items"]
    assert array_row["minItems"] == array_row["maxItems"] == 4
    names = list(svc_file.model.feature_names_in_)
    assert object_row["required"] == names
    assert object_row["additionalProperties"] is False
    assert request["properties"]["method"]["enum"] == ["predict", "decision_function"]
    assert doc["x-mltrain"]["classes"] == [0, 1, 2]
    assert doc["x-mltrain"]["feature_names"] == names
    assert doc["x-mltrain"]["model_name"] == "iris_svc"
    assert doc["paths"]["/score"]["post"]["security"] == [{"bearer": []}]


def test_swagger_of_a_classifier_with_probabilities(skops_server):
    doc = skops_server.get("/swagger.json").json()
    response = doc["components"]["schemas"]["ScoreResponse"]["properties"]["predictions"]["anyOf"]
    by_method = {s["description"].split(":")[0]: s for s in response}
    assert by_method["predict"]["items"]["enum"] == ["setosa", "versicolor", "virginica"]
    assert by_method["predict_proba"]["items"]["minItems"] == 3
    assert doc["paths"]["/score"]["post"]["security"] == []
