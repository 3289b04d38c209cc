"""Key auth: Bearer keys checked against the keys file's digests, rotation without restart."""

from __future__ import annotations

import time

from .helpers import PRIMARY_KEY, SECONDARY_KEY, request, write_keys

ROW = {"data": [[5.1, 3.5, 1.4, 0.2]]}


def test_missing_key_is_401_with_challenge(svc_server):
    resp = svc_server.score(ROW, key=None)
    assert resp.status == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in resp.json()["error"]


def test_wrong_key_and_wrong_scheme_are_401(svc_server):
    assert svc_server.score(ROW, key="not-the-key").status == 401
    resp = request(
        svc_server.url,
        "POST",
        "/score",
        b'{"data": [[1, 2, 3, 4]]}',
        {"Content-Type": "application/json", "Authorization": f"Basic {PRIMARY_KEY}"},
    )
    assert resp.status == 401
    assert "www-authenticate" in resp.headers


def test_primary_and_secondary_keys_work(svc_server):
    assert svc_server.score(ROW, key=PRIMARY_KEY).status == 200
    assert svc_server.score(ROW, key=SECONDARY_KEY).status == 200


def test_metrics_need_the_key_but_swagger_and_health_do_not(svc_server):
    assert svc_server.get("/metrics").status == 401
    assert svc_server.get("/metrics", key=SECONDARY_KEY).status == 200
    for path in ("/swagger.json", "/health/live", "/health/ready"):
        assert svc_server.get(path).status == 200, path


def _wait_until(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def test_regenerated_key_takes_effect_without_restart(svc_server, keys_file):
    pid = svc_server.get("/health/live").json()["pid"]
    try:
        write_keys(keys_file, "brand-new-primary", SECONDARY_KEY)
        _wait_until(lambda: svc_server.score(ROW, key="brand-new-primary").status == 200, "the new key works")
        assert svc_server.score(ROW, key=PRIMARY_KEY).status == 401
        assert svc_server.score(ROW, key=SECONDARY_KEY).status == 200
    finally:
        write_keys(keys_file, PRIMARY_KEY, SECONDARY_KEY)
        _wait_until(lambda: svc_server.score(ROW, key=PRIMARY_KEY).status == 200, "the old key works again")
    assert svc_server.get("/health/live").json()["pid"] == pid  # same worker: no restart
