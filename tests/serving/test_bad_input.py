"""Every bad request gets a 4xx JSON error naming the problem, and the server keeps serving."""

from __future__ import annotations

import json

import pytest

from .helpers import PRIMARY_KEY, request

NAMES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
GOOD_ROW = [5.1, 3.5, 1.4, 0.2]
JSON_AUTH = {"Content-Type": "application/json", "Authorization": f"Bearer {PRIMARY_KEY}"}


def _obj(values: list[float], names: list[str] = NAMES) -> dict[str, float]:
    return dict(zip(names, values, strict=False))


CASES = [
    # id, raw body, expected status, words the error must contain
    ("malformed-json", b'{"data": [[5.1, 3.5', 400, "malformed JSON"),
    ("empty-body", b"", 400, "empty"),
    ("body-not-object", b"[[5.1, 3.5, 1.4, 0.2]]", 400, "JSON object"),
    ("missing-data", b'{"rows": [[1, 2, 3, 4]]}', 400, "unknown key"),
    ("no-data-key", b"{}", 400, 'missing "data"'),
    ("empty-data", b'{"data": []}', 400, "empty"),
    ("data-not-list", b'{"data": {"a": 1}}', 400, "must be a list"),
    ("flat-row", b'{"data": [5.1, 3.5, 1.4, 0.2]}', 400, "not a list"),
    ("too-few-features", b'{"data": [[5.1, 3.5, 1.4]]}', 400, "4 features"),
    ("too-many-features", b'{"data": [[5.1, 3.5, 1.4, 0.2, 9]]}', 400, "4 features"),
    ("ragged-rows", b'{"data": [[5.1, 3.5, 1.4, 0.2], [1, 2]]}', 400, "row 1 has 2 values"),
    ("string-value", b'{"data": [[5.1, "wide", 1.4, 0.2]]}', 400, '"wide"'),
    ("nested-value", b'{"data": [[5.1, [3.5], 1.4, 0.2]]}', 400, "must be numbers"),
    ("null-value", b'{"data": [[5.1, null, 1.4, 0.2]]}', 400, "missing values"),
    ("nan-literal", b'{"data": [[NaN, 3.5, 1.4, 0.2]]}', 400, "null/NaN"),
    ("infinity-literal", b'{"data": [[5.1, 3.5, -Infinity, 0.2]]}', 400, "-Infinity"),
    ("overflowing-number", b'{"data": [[5.1, 3.5, 1e999, 0.2]]}', 400, "Infinity"),
    ("unknown-method", b'{"data": [[5.1, 3.5, 1.4, 0.2]], "method": "transform"}', 400, "predict, decision_function"),
    ("method-not-on-model", b'{"data": [[5.1, 3.5, 1.4, 0.2]], "method": "predict_proba"}', 400, "supports"),
    ("method-not-string", b'{"data": [[5.1, 3.5, 1.4, 0.2]], "method": ["predict"]}', 400, "unknown method"),
    ("missing-feature-name", json.dumps({"data": [_obj(GOOD_ROW[:3])]}).encode(), 400, "missing feature"),
    ("extra-feature-name", json.dumps({"data": [{**_obj(GOOD_ROW), "color": 1}]}).encode(), 400, "'color'"),
    ("wrong-feature-names", json.dumps({"data": [_obj(GOOD_ROW, list("abcd"))]}).encode(), 400, "missing feature"),
    ("mixed-row-forms", json.dumps({"data": [_obj(GOOD_ROW), GOOD_ROW]}).encode(), 400, "one form"),
    ("object-with-string", json.dumps({"data": [_obj([5.1, "x", 1.4, 0.2])]}).encode(), 400, "sepal width"),
]


@pytest.mark.parametrize(("body", "status", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_body_is_a_4xx_naming_the_problem(svc_server, body, status, words):
    resp = request(svc_server.url, "POST", "/score", body, JSON_AUTH)
    assert resp.status == status, resp.body
    assert resp.headers["content-type"] == "application/json"
    assert words in resp.json()["error"]
    assert svc_server.score({"data": [GOOD_ROW]}).status == 200


def test_wrong_or_missing_content_type_is_415(svc_server):
    body = json.dumps({"data": [GOOD_ROW]}).encode()
    for headers in ({"Content-Type": "text/plain"}, {}):
        resp = request(svc_server.url, "POST", "/score", body, {**headers, "Authorization": f"Bearer {PRIMARY_KEY}"})
        assert resp.status == 415
        assert "application/json" in resp.json()["error"]
    ok = request(
        svc_server.url, "POST", "/score", body, {**JSON_AUTH, "Content-Type": "application/json; charset=utf-8"}
    )
    assert ok.status == 200


def test_body_over_the_limit_is_413_by_length_and_while_reading(svc_server):
    limit = 1 << 20  # the default max_body_bytes
    big = json.dumps({"data": [GOOD_ROW] * 50_000}).encode()
    assert len(big) > limit
    by_length = request(svc_server.url, "POST", "/score", big, JSON_AUTH)
    assert by_length.status == 413
    assert f"limit is {limit} bytes" in by_length.json()["error"]
    streamed = request(svc_server.url, "POST", "/score", big, JSON_AUTH, chunked=True)  # no Content-Length
    assert streamed.status == 413
    assert "more than" in streamed.json()["error"]
    assert svc_server.score({"data": [GOOD_ROW] * 1000}).status == 200


def test_unknown_path_is_404_and_wrong_verb_is_405(svc_server):
    resp = request(svc_server.url, "GET", "/predict")
    assert resp.status == 404
    assert "/score" in resp.json()["error"]
    resp = request(svc_server.url, "GET", "/score", headers={"Authorization": f"Bearer {PRIMARY_KEY}"})
    assert resp.status == 405
    assert resp.headers["allow"] == "POST"
    resp = request(svc_server.url, "POST", "/health/live", b"{}", {"Content-Type": "application/json"})
    assert resp.status == 405
    assert resp.headers["allow"] == "GET"
    assert svc_server.score({"data": [GOOD_ROW]}).status == 200
