"""Data assets in the dashboard, over one populated workspace (``seed_pages`` with ``seed_data``): the
API of assets, versions and a version's capped manifest and lineage (data → runs → models), a run's
inputs and outputs, a model version's data; the pages in the Debian Chromium, the lineage as links,
missing assets as a banner, stored HTML and hostile file names as text."""

from __future__ import annotations

from typing import Any

import pytest
from support import request

from .helpers import MANY_FILES, XSS, XSS_FILE, ok, serving


@pytest.fixture(scope="module")
def ui(pages: dict[str, Any]) -> Any:
    with serving(pages["root"]) as server:
        yield server


# -- the API -------------------------------------------------------------------------------------------
def test_the_data_list_has_every_asset_with_its_latest_version_aliases_and_archived_ones_marked(ui, pages):
    assets = {a["name"]: a for a in ok(ui, "/api/data")}
    assert list(assets) == ["features", "iris-train", "many", "old", "ref"]
    train = assets["iris-train"]
    assert (train["version"], train["file_count"], train["archived"]) == (2, 6, False)
    assert train["size"] == pages["data"]["train2"].size and train["created_at"] > 0
    assert train["versions"] == [
        {"version": 2, "aliases": ["prod"], "archived": False},
        {"version": 1, "aliases": [], "archived": False},
    ]
    assert assets["old"]["archived"] is True and assets["old"]["versions"][0]["archived"] is True
    assert assets["ref"]["stored"] is False and assets["ref"]["datastore"] == {"name": "folder", "kind": "folder"}


def test_an_assets_versions_carry_aliases_digest_size_files_datastore_and_producer(ui, pages):
    d = ok(ui, "/api/data/iris-train")
    assert [v["version"] for v in d["versions"]] == [2, 1]
    v2, v1 = d["versions"]
    assert v2["aliases"] == ["prod"] and v2["digest"] == pages["data"]["train2"].digest
    assert (v1["file_count"], v1["size"]) == (5, pages["data"]["train1"].size)
    assert v1["datastore"] == {"name": "workspace", "kind": "workspace"} and v1["stored"] is True
    assert ok(ui, "/api/data/features")["versions"][0]["producer_run_id"] == pages["d"]


def test_a_version_has_its_manifest_source_and_lineage_from_data_to_runs_to_models(ui, pages):
    resp = request(ui.url, "GET", "/api/data/features/versions/1")
    v = resp.json()
    assert v["ref"] == "data:features:1" and v["versions"] == [1]
    assert v["manifest"]["entries"] == [
        {"relpath": "features.parquet", "size": 104, "sha256": pages["data"]["features"].manifest[0].sha256,
         "checksum": None}]  # fmt: skip
    lin = v["lineage"]
    assert lin["produced_by"] == {"run": pages["d"], "experiment": "iris", "status": "Failed"}
    assert lin["written_by"] == []  # the producer's own output link is not listed twice
    assert [(r["run"], r["key"], r["mode"], r["status"], r["models"]) for r in lin["read_by"]] == [
        (pages["a"], "features", "mount", "Completed", [{"name": "iris-model", "version": 1}])
    ]
    assert lin["read_by_total"] == 1
    # its datastore by name and kind only: the recorded options (a config node) are never answered
    assert "_target_" not in resp.body.decode() and "datastore_config" not in resp.body.decode()
    ref = ok(ui, "/api/data/ref/versions/1")
    assert ref["source"].startswith("file:///") and ref["stored"] is False
    assert ok(ui, "/api/data/iris-train/versions/1")["lineage"]["produced_by"] is None


def test_a_long_manifest_comes_a_page_at_a_time_with_its_total(ui):
    first = ok(ui, "/api/data/many/versions/1")["manifest"]
    assert (len(first["entries"]), first["total"], first["offset"], first["limit"]) == (1000, MANY_FILES, 0, 1000)
    rest = ok(ui, "/api/data/many/versions/1?offset=1000")["manifest"]["entries"]
    paths = [e["relpath"] for e in first["entries"] + rest]
    assert paths == [f"part-{i:05d}.csv" for i in range(MANY_FILES)]
    assert len(ok(ui, "/api/data/many/versions/1?limit=5000")["manifest"]["entries"]) == MANY_FILES
    for bad in ("limit=0", "limit=5001", "offset=-1", "limit=x"):
        resp = request(ui.url, "GET", f"/api/data/many/versions/1?{bad}")
        assert resp.status == 400 and bad.split("=")[0] in resp.json()["error"], bad


def test_a_run_carries_its_inputs_and_outputs_and_a_model_version_its_data(ui, pages):
    a = ok(ui, f"/api/runs/{pages['a']}")
    train1, features = pages["data"]["train1"], pages["data"]["features"]
    assert a["inputs"] == [
        {"key": "train", "name": "iris-train", "version": 1, "uri": None, "digest": train1.digest, "mode": "download"},
        {"key": "features", "name": "features", "version": 1, "uri": None, "digest": features.digest, "mode": "mount"},
    ]
    assert a["outputs"] == []
    assert ok(ui, f"/api/runs/{pages['d']}")["outputs"][0]["name"] == "features"
    assert ok(ui, f"/api/runs/{pages['b']}")["inputs"] == []
    lineage = ok(ui, "/api/models/iris-model/versions/1")["lineage"]
    assert [(x["name"], x["version"]) for x in lineage["data"]] == [("iris-train", 1), ("features", 1)]
    data2 = ok(ui, "/api/models/iris-model/versions/2")["lineage"]["data"]
    assert [(x["key"], x["name"], x["uri"]) for x in data2] == [
        ("train", "iris-train", None), ("lookup", None, "https://example.org/lookup.csv")]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/api/data/nosuch", "no data asset 'nosuch'"),
        ("/api/data/iris-train/versions/9", "versions: 1, 2"),
        ("/api/data/bad%20name", "not a valid name"),
    ],
)
def test_a_missing_asset_or_version_is_a_404_naming_the_choices_or_a_soft_one_for_pages(ui, path, words):
    resp = request(ui.url, "GET", path)
    assert resp.status == (400 if "bad" in path else 404) and words in resp.json()["error"], resp.json()
    if resp.status == 404:
        soft = request(ui.url, "GET", path, headers={"X-Soft-Not-Found": "1"})
        assert soft.status == 200 and soft.json()["not_found"] is True


# -- the pages -----------------------------------------------------------------------------------------
def test_the_data_page_lists_assets_with_versions_aliases_and_archived_marked(ui, page, console_errors):
    page.goto(ui.url + "/")
    page.click("header a[data-nav=data]")
    row = page.locator("#data-assets tr[data-asset=iris-train]")
    row.wait_for()
    assert page.locator("header a.active").inner_text() == "Data"
    cells = row.locator("td").all_inner_texts()
    assert cells[:5] == ["iris-train", "iris-train:2", "2", "@prod → 2", "uri_folder"]
    assert page.locator("#data-assets tr[data-asset=old]").get_attribute("class") == "archived"
    row.locator("a[href='/data/iris-train']").click()
    page.locator("#data-versions").wait_for()
    versions = page.locator("#data-versions tbody tr")
    assert versions.evaluate_all("els => els.map(e => e.dataset.version)") == ["2", "1"]
    assert versions.first.locator("td").nth(1).inner_text() == "@prod"
    assert "workspace (workspace, stored by sha256)" in versions.first.inner_text()
    assert console_errors == []


def test_a_versions_lineage_links_its_producer_to_the_runs_that_read_it_and_their_models(
    ui, pages, page, console_errors
):
    page.goto(ui.url + "/data/features/1")
    flow = page.locator("#lineage")
    flow.wait_for()
    assert flow.locator("#lineage-producer a").get_attribute("href") == f"/runs/{pages['d']}"
    assert flow.locator("#lineage-version").inner_text().endswith("data:features:1")
    assert flow.locator("#lineage-readers a").get_attribute("href") == f"/runs/{pages['a']}"
    assert flow.locator("#lineage-models a").get_attribute("href") == "/models/iris-model/1"
    assert page.locator(f"#data-readers tr[data-run='{pages['a']}'] td").all_inner_texts()[2:4] == ["features", "mount"]
    assert page.locator("#manifest li.file").evaluate_all("els => els.map(e => e.dataset.path)") == ["features.parquet"]
    assert page.locator("#manifest-more").is_hidden()
    # follow the links: to the model that came of it, to its data lineage, back to the data
    flow.locator("#lineage-models a").click()
    data = page.locator("#lineage-data")
    data.wait_for()
    assert data.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))") == [
        "/data/iris-train/1", "/data/features/1"]  # fmt: skip
    data.locator("a[href='/data/iris-train/1']").click()
    page.locator("#lineage").wait_for()
    assert page.locator("#lineage-producer").inner_text().endswith("no run (created with mltrain data create)")
    assert console_errors == []


def test_a_runs_page_shows_the_data_it_read_and_wrote(ui, pages, page, console_errors):
    page.goto(f"{ui.url}/runs/{pages['c']}")
    rows = page.locator("#run-data tbody tr")
    rows.first.wait_for()
    assert [r.split("\t")[:3] for r in rows.all_inner_texts()] == [
        ["input", "train", "iris-train:2"], ["input", "lookup", "https://example.org/lookup.csv"]]  # fmt: skip
    assert rows.first.locator("a").get_attribute("href") == "/data/iris-train/2"
    page.goto(f"{ui.url}/runs/{pages['d']}")
    out = page.locator("#run-data tr[data-direction=output]")
    out.wait_for()
    assert out.locator("a").get_attribute("href") == "/data/features/1"
    page.goto(f"{ui.url}/runs/{pages['b']}")  # a run without data: no section
    page.locator("body[data-ready]").wait_for()
    assert page.locator("#run-data").count() == 0
    assert console_errors == []


def test_a_long_manifest_shows_its_first_page_and_the_rest_on_request(ui, page, console_errors):
    page.set_viewport_size({"width": 400, "height": 800})
    page.goto(ui.url + "/data/many/1")
    page.locator("#manifest li.file").first.wait_for()
    assert page.locator("#manifest li.file").count() == 1000
    assert page.locator("#manifest-count").inner_text() == f"the first 1000 of {MANY_FILES} files (by path)"
    box = page.locator("#manifest").evaluate("e => [e.scrollHeight > e.clientHeight, getComputedStyle(e).overflowY]")
    assert box == [True, "auto"]  # it scrolls inside its box
    page.click("#manifest-more")
    page.wait_for_function(f"() => document.querySelectorAll('#manifest li.file').length === {MANY_FILES}")
    assert page.locator("#manifest-more").is_hidden()
    assert page.locator("#manifest-count").inner_text() == f"{MANY_FILES} files"
    assert console_errors == []


@pytest.mark.parametrize("path", ["/data/nosuch", "/data/iris-train/9", "/data/iris-train/x"])
def test_a_missing_asset_or_version_gets_its_banner(ui, page, console_errors, path):
    page.goto(ui.url + path)
    page.locator("body[data-ready]").wait_for()
    assert page.locator("main h1").inner_text() == "Not found"
    assert "no " in page.locator("#not-found").inner_text()
    assert console_errors == []


def test_stored_html_and_hostile_file_names_reach_the_data_pages_as_text(ui, pages, page, console_errors):
    for path in ("/data", "/data/iris-train", "/data/iris-train/1"):
        page.goto(ui.url + path)
        page.locator("body[data-ready]").wait_for()
        assert page.evaluate("window.__xss") is None, path
        assert page.locator("main img").count() == 0, path
    text = page.locator("main").inner_text()
    assert f"iris rows {XSS}" in text and f"{XSS}={XSS}" in text
    files = page.locator("#manifest li.file").evaluate_all("els => els.map(e => e.dataset.path)")
    assert sorted(files) == sorted(["__proto__/a.csv", "constructor/b.csv", "sub/part-0.csv", "train.csv", XSS_FILE])
    folders = page.locator("#manifest li.dir > details > summary .mono").all_inner_texts()
    assert sorted(folders) == ["__proto__/", "constructor/", "sub/"]
    page.goto(f"{ui.url}/runs/{pages['c']}")  # the same file tree shows a run's artifacts
    page.locator("li.file[data-path='__proto__/polluted.txt']").wait_for()
    assert console_errors == []
