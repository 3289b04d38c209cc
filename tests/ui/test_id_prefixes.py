"""Run-id and snapshot-id prefixes match literally: ``_`` and ``%`` are characters of the id, never
wildcards (the management command and the dashboard's API over a real uvicorn server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import request

from .helpers import finished_run, open_ws, serving

A = "20260101_000001_aaaaaa"
B = "20260101-000002-bbbbbb"


@pytest.fixture(scope="module")
def two_ids(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with two runs whose ids differ where one has ``_`` and the other ``-``."""
    root = tmp_path_factory.mktemp("prefix") / "ws"
    ws = open_ws(root)
    finished_run(ws, A, "e", {}, {})
    finished_run(ws, B, "e", {}, {})
    ws.db.dispose()
    return root


def _resolved(root: Path, prefix: str) -> str | None:
    from mltrain.errors import NotFoundError

    ws = open_ws(root)
    try:
        return ws.runs.resolve_id(prefix)
    except NotFoundError:
        return None
    finally:
        ws.db.dispose()


def test_run_prefixes_match_literally(cli, two_ids):
    assert _resolved(two_ids, "20260101_") == A  # the `_` is the id's own character
    assert _resolved(two_ids, "20260101-") == B
    for prefix in ("2026010_", "_", "%", "20260101_000001%", "20260101%000002", "20260101_AAA"):
        assert _resolved(two_ids, prefix) is None, prefix  # no wildcard, no dropped `%`, case-sensitive
    shown = cli("--workspace", str(two_ids), "runs", "show", "20260101_", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == A, shown.output
    refused = cli("--workspace", str(two_ids), "runs", "show", "2026010_")
    assert refused.returncode == 2 and "no run '2026010_'" in refused.stderr, refused.output


def test_snapshot_prefixes_match_literally(cli, two_ids, tmp_path):
    from mltrain.errors import NotFoundError

    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("print('hi')\n")
    ws = open_ws(two_ids)
    try:
        snap = ws.snapshots.take(src)
        assert ws.snapshots.get(snap.id[:12]).id == snap.id
        for prefix in ("_", "%", snap.id[:4] + "_"):
            with pytest.raises(NotFoundError):
                ws.snapshots.get(prefix)
    finally:
        ws.db.dispose()
    proc = cli("--workspace", str(two_ids), "snapshots", "show", "%")
    assert proc.returncode == 2 and "'%' is not a snapshot id" in proc.stderr, proc.output


def test_dashboard_prefixes_match_literally(two_ids):
    with serving(two_ids) as ui:
        assert request(ui.url, "GET", "/api/runs/20260101_").json()["run"]["id"] == A
        assert request(ui.url, "GET", "/api/runs/20260101-").json()["run"]["id"] == B
        for prefix in ("_", "2026010_", "20260101_000002"):
            resp = request(ui.url, "GET", f"/api/runs/{prefix}")
            assert resp.status == 404, (prefix, resp.status, resp.body[:200])
