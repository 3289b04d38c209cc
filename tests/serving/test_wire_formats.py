"""The hand-written wire formats, checked by their reference parsers: the Prometheus text exposition
format of ``/metrics`` (prometheus_client's parser) and the OpenAPI 3 document of ``/swagger.json``
(openapi-spec-validator)."""

from __future__ import annotations

from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from .helpers import PRIMARY_KEY

ROW = [5.1, 3.5, 1.4, 0.2]


def test_metrics_parse_as_prometheus_text(svc_server):
    assert svc_server.score({"data": [ROW, ROW]}).status == 200
    assert svc_server.score({"data": [[1, 2]]}).status == 400
    text = svc_server.get("/metrics", key=PRIMARY_KEY).body.decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}  # raises on malformed lines
    requests = families["mltrain_requests"]
    assert requests.type == "counter"
    by_status = {s.labels["status"]: s.value for s in requests.samples if s.labels.get("path") == "/score"}
    assert by_status["200"] >= 1 and by_status["400"] >= 1
    latency = families["mltrain_request_duration_seconds"]
    assert latency.type == "histogram"
    buckets = [s for s in latency.samples if s.name.endswith("_bucket")]
    assert buckets and buckets[-1].labels["le"] == "+Inf"
    counts = [s.value for s in buckets if s.labels.get("path") == "/score"]
    assert counts == sorted(counts)  # cumulative


def test_swagger_is_a_valid_openapi_document(svc_server, skops_server):
    for server in (svc_server, skops_server):
        doc = server.get("/swagger.json").json()
        validate(doc)  # raises OpenAPIValidationError with the path of the first problem
        assert doc["openapi"].startswith("3.")
        assert "/score" in doc["paths"]
