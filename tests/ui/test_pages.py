"""The dashboard's second pass, in the Debian Chromium over one populated workspace (``seed_pages``): a
runs table shaped by the user, run pages that follow a live run to its end, charts that fit the data
(single values as numbers, smoothing, x as step or time, values in full), artifacts as a tree with
previews, sweeps best first with linked parallel coordinates, model version pages, environments with
their runs, every page at 1440 and 400 px without a console error, stored HTML shown as text."""

from __future__ import annotations

import json
import time

import pytest
from support import request

from .helpers import (
    ENV_HASH,
    TOKEN,
    XSS,
    add_artifact,
    ids,
    ok,
    open_ws,
    registry,
    running_run,
    seed,
    seed_pages,
    serving,
)


@pytest.fixture(scope="module")
def ui(pages):
    with serving(pages["root"]) as server:
        yield server


# -- the API behind the pages ---------------------------------------------------------------------------
def test_runs_sort_by_an_argument_or_a_tag_and_carry_their_arguments(ui, pages):
    by_c = ok(ui, "/api/runs?flat=1&sort=arg:C&limit=500")
    values = [r["args"].get("C") for r in by_c["runs"]]
    assert values[:3] == [0.1, 0.1, 0.1] and values[-1] is None  # lowest first; the sweep has no C: last
    present = [v for v in values if v is not None]
    assert present == sorted(present)
    down = [r["args"].get("C") for r in ok(ui, "/api/runs?flat=1&sort=-arg:C&limit=500")["runs"]]
    assert down[0] == 10.0 and down[-1] is None
    paged = [r for o in (0, 4, 8) for r in ids(ok(ui, f"/api/runs?flat=1&sort=-arg:C&limit=4&offset={o}"))]
    assert paged == ids(ok(ui, "/api/runs?flat=1&sort=-arg:C&limit=500"))
    kernels = [r["args"].get("kernel") for r in ok(ui, "/api/runs?flat=1&sort=arg:kernel")["runs"]]
    assert kernels[: kernels.index("poly")] == sorted(kernels[: kernels.index("poly")])
    assert ids(ok(ui, "/api/runs?sort=-tag:stage"))[0] == pages["a"]
    a = next(r for r in ok(ui, "/api/runs")["runs"] if r["id"] == pages["a"])
    assert a["args"] == {"C": 1.0, "kernel": "rbf"} and "config" not in a
    quoted = request(ui.url, "GET", "/api/runs?sort=arg:a%22b")
    assert quoted.status == 400 and "'\"'" in quoted.json()["error"]
    for bad in ("tag:", "arg:", "bogus:x"):
        assert request(ui.url, "GET", f"/api/runs?sort={bad}").status == 400


def test_a_run_whose_config_is_damaged_sorts_last_and_breaks_no_list(tmp_path):
    root = tmp_path / "ws"
    seeded = seed(root)
    ws = open_ws(root)
    with ws.db.write() as conn:
        conn.exec_driver_sql("UPDATE runs SET config = '{not json' WHERE id = ?", (seeded["c"],))
    ws.db.dispose()
    with serving(root) as ui:
        ranked = ok(ui, "/api/runs?sort=-arg:C")["runs"]
        assert [r["id"] for r in ranked][:2] == [seeded["a"], seeded["b"]] and seeded["c"] in ids({"runs": ranked[2:]})
        damaged = next(r for r in ranked if r["id"] == seeded["c"])
        assert damaged["args"] == {"C": "3.0", "kernel": "poly"}  # from its command line
        assert ok(ui, "/api/columns")["arguments"]


def test_columns_offer_metric_argument_and_tag_names_most_common_first(ui, pages):
    cols = ok(ui, "/api/columns")
    metrics = {m["name"]: m["runs"] for m in cols["metrics"]}
    assert metrics["accuracy"] == 10 and metrics["children_completed"] == 1
    assert cols["metrics"][0]["name"] in ("accuracy", "kernel")
    assert [a["name"] for a in cols["arguments"]][:2] == ["C", "kernel"] and XSS in {
        a["name"] for a in cols["arguments"]
    }
    tags = {t["name"] for t in cols["tags"]}
    assert {"stage", "mltrain.sweep", "mltrain.sweep.trial", XSS} <= tags


def test_sweep_lists_its_trials_best_first_with_the_arguments_it_varied(ui, pages):
    sw = ok(ui, f"/api/sweeps/{pages['sweep']}")
    assert sw["primary_metric"] == "accuracy" and sw["goal"] == "maximize"
    assert [c["trial"] for c in sw["children"]] == [5, 4, 3, 2, 1, 0]
    assert sw["best"] == pages["children"][5] and sw["children"][0]["value"] == pytest.approx(0.75)
    assert sw["arguments"] == ["C", "kernel"] and sw["metrics"] == ["accuracy", "loss"]  # kernel once


def test_text_markdown_json_and_yaml_artifacts_preview(ui, pages):
    base = f"/api/runs/{pages['d']}/preview?path="
    md = ok(ui, base + "outputs/report.md")
    assert md["kind"] == "text" and md["format"] == "markdown" and md["text"].startswith("# Report")
    assert ok(ui, base + "outputs/metrics.json")["format"] == "json"
    assert ok(ui, base + "outputs/config.yaml")["format"] == "yaml"
    assert ok(ui, base + "logs/notes.txt") == {"kind": "text", "format": "text", "text": "line 1\nline 2\n",
                                               "truncated": False}  # fmt: skip
    png = request(ui.url, "GET", base + "outputs/plots/curve.png")
    assert png.status == 400 and "download" in png.json()["hint"]


def test_model_version_has_lineage_files_metrics_and_its_endpoints(ui, pages):
    v1 = ok(ui, "/api/models/iris-model/versions/1")
    assert v1["lineage"]["run"] == pages["a"] and v1["run_metrics"]["accuracy"] == 0.93
    assert v1["environment"] == {"name": "sklearn", "version": "1.5", "builder": "venv", "hash": ENV_HASH,
                                 "python": "3.11"}  # fmt: skip
    assert v1["aliases"] == ["staging"] and v1["size"] == v1["files"][0]["size"] > 0 and v1["versions"] == [1, 2]
    v2 = ok(ui, "/api/models/iris-model/versions/2")
    assert [e["name"] for e in v2["endpoints"]] == ["iris-ep"] and v2["aliases"] == ["production"]
    assert v2["input_schema"]["schema"] is None and "did not answer" in v2["input_schema"]["note"]
    assert v1["endpoints"] == [] and v1["input_schema"]["note"] == "no endpoint serves this version"
    missing = request(ui.url, "GET", "/api/models/iris-model/versions/9")
    assert missing.status == 404 and "versions: 1, 2" in missing.json()["hint"]
    listed = ok(ui, "/api/models")[0]["versions"]
    assert listed == [{"version": 2, "aliases": ["production"], "archived": False},
                      {"version": 1, "aliases": ["staging"], "archived": False}]  # fmt: skip


def test_a_page_asks_for_not_found_as_a_200_and_scripts_get_a_404(ui):
    soft = request(ui.url, "GET", "/api/runs/20990101_000000_ffffff", headers={"X-Soft-Not-Found": "1"})
    assert soft.status == 200 and soft.json()["not_found"] is True and "no run" in soft.json()["error"]
    assert request(ui.url, "GET", "/api/runs/20990101_000000_ffffff").status == 404
    bad = request(ui.url, "GET", "/api/runs?limit=0", headers={"X-Soft-Not-Found": "1"})
    assert bad.status == 400  # only "not found" is softened


def test_environments_list_the_runs_that_used_them(ui, pages):
    [env] = ok(ui, "/api/environments")
    assert env["name"] == "sklearn" and env["version"] == "1.5"
    assert env["runs"]["count"] == 2 and [r["id"] for r in env["runs"]["runs"]] == [pages["d"], pages["a"]]


# -- the runs table --------------------------------------------------------------------------------------
def test_runs_table_columns_are_chosen_kept_and_sorted_by_a_click(ui, pages, page, console_errors):
    page.goto(ui.url + "/")
    page.locator("#runs tbody tr").first.wait_for()
    page.click("#columns summary")
    page.fill("#columns input[type=search]", "solv")
    assert page.locator("#columns .col-option:visible").count() == 1
    page.check("#columns input[value='arg:solver']")
    page.wait_for_function("() => document.querySelector(\"th button.sort[data-sort='arg:solver']\")")
    assert "col=arg%3Asolver" in page.url
    kept = json.loads(page.evaluate("localStorage.getItem('mltrain-runs-columns')"))
    assert "arg:solver" in kept
    page.goto(ui.url + "/")  # no columns in the URL: this browser's choice
    page.locator("th button.sort[data-sort='arg:solver']").wait_for()
    page.click("#columns summary")
    page.check("#columns input[value='arg:C']")
    page.locator("th button.sort[data-sort='arg:C']").click()
    page.wait_for_function("() => location.search.includes('sort=-arg%3AC')")
    page.wait_for_function(f"() => document.querySelector('#runs tbody tr').dataset.run === '{pages['c']}'")  # C=3
    page.locator("th button.sort[data-sort='arg:C']").click()
    page.wait_for_function(f"() => document.querySelector('#runs tbody tr').dataset.run === '{pages['b']}'")  # C=0.1
    header = page.locator("th button.sort[data-sort='arg:C']").inner_text()
    assert header.endswith("▲")
    # a shared URL shows its own columns, whatever this browser kept
    page.goto(ui.url + "/?col=metric:accuracy&col=tag:stage")
    page.locator("#runs tbody tr").first.wait_for()
    heads = page.locator("#runs th button.sort").evaluate_all("els => els.map(e => e.dataset.sort)")
    assert heads == ["id", "experiment", "status", "created_at", "metric:accuracy", "tag:stage"]
    assert console_errors == []


def test_runs_table_hides_internal_tags_reads_well_and_opens_a_sweep_best_first(ui, pages, page, console_errors):
    page.goto(ui.url + "/?col=metric:accuracy")
    sweep_row = page.locator(f"tr[data-run='{pages['sweep']}']")
    sweep_row.wait_for()
    assert "mltrain.sweep" not in sweep_row.locator("td.tags").inner_text()
    assert "+4 internal" in sweep_row.locator("td.tags").inner_text()
    sweep_row.locator("td.toggle button").click()
    page.wait_for_function("() => document.querySelectorAll('#runs tbody tr.child').length === 6")
    order = page.locator("#runs tbody tr.child").evaluate_all("els => els.map(e => e.dataset.run)")
    assert order == pages["children"][::-1]  # accuracy 0.75, 0.72, ...: best first
    assert page.locator("#runs tbody tr.child").first.locator("td.toggle").inner_text() == "#5"
    link = page.locator(f"a[href='/runs/{pages['a']}']").first
    assert link.evaluate("a => getComputedStyle(a).textDecorationLine") == "none"  # underscores stay visible
    date = page.locator(f"tr[data-run='{pages['a']}'] td").nth(5)
    assert date.evaluate(
        "td => td.getClientRects().length === 1 && td.offsetHeight < 2.2 * parseFloat(getComputedStyle(td).lineHeight)"
    )
    page.check("input[name=internal]")
    page.click("#filters button[type=submit]")
    tags = f"document.querySelector(\"tr[data-run='{pages['sweep']}'] td.tags\").textContent"
    page.wait_for_function(f"() => {tags}.includes('mltrain.sweep=parent')")
    assert console_errors == []


# -- a run page ------------------------------------------------------------------------------------------
def test_single_values_are_numbers_and_charts_smooth_switch_x_and_show_values_in_full(ui, pages, page, console_errors):
    page.goto(f"{ui.url}/runs/{pages['d']}")
    page.locator(".chart[data-key=accuracy][data-drawn]").wait_for()
    assert page.locator(".tile[data-key=n_features] .tile-value").inner_text() == "4"
    assert page.locator(".chart[data-key=n_features]").count() == 0  # no one-point chart
    chart = page.locator(".chart[data-key=accuracy]")
    chart.scroll_into_view_if_needed()
    legend = "document.querySelector('.chart[data-key=accuracy] .u-series:nth-child(2) .u-value').textContent"
    for _ in range(40):  # point at the first point again if the chart was laid out or redrawn under the pointer
        box = chart.locator(".u-over").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.move(box["x"] + 2, box["y"] + box["height"] / 2, steps=3)
        if page.evaluate(f"() => {legend}") == "0.123456789012":
            break
        page.wait_for_timeout(250)
    assert page.evaluate(f"() => {legend}") == "0.123456789012"  # in full, not 0.12346
    page.fill(".controls input.smoothing", "0.6")
    page.dispatch_event(".controls input.smoothing", "input")
    text = "document.querySelector('.chart[data-key=accuracy]').textContent"
    page.wait_for_function(f"() => {text}.includes('accuracy (smoothed)')")
    page.select_option(".controls select.x-mode", "relative")
    page.wait_for_function(f"() => {text}.includes('seconds since the first point')")
    page.select_option(".controls select.x-mode", "wall")
    page.wait_for_function(f"() => {text}.includes('time')")
    assert console_errors == []


def test_a_failed_runs_error_keeps_its_lines_inside_its_card(ui, pages, page, console_errors):
    for width in (1440, 400):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{ui.url}/runs/{pages['d']}")
        error = page.locator("#run-error")
        error.wait_for()
        assert error.inner_text().splitlines()[:2] == [
            "Traceback (most recent call last):",
            '  File "train.py", line 3',
        ]
        fits = error.evaluate(
            "e => { const c = e.closest('.card').getBoundingClientRect(), r = e.getBoundingClientRect();"
            " return r.left >= c.left && r.right <= c.right + 0.5 }"
        )
        assert fits, width
    assert console_errors == []


def test_artifacts_are_a_tree_with_previews_that_toggle_and_images_open_full_size(ui, pages, page, console_errors):
    page.goto(f"{ui.url}/runs/{pages['d']}")
    tree = page.locator("ul.tree").first
    tree.wait_for()
    assert tree.locator(":scope > li.dir > details > summary").evaluate_all(
        "els => els.map(e => e.textContent.split(' ')[0])"
    ) == ["logs/", "outputs/"]
    assert page.locator("li.dir li.dir summary").first.inner_text().startswith("plots/")
    md = page.locator("li.file[data-path='outputs/report.md'] button.preview-btn")
    md.click()
    page.locator("#artifact-preview .markdown h3").wait_for()
    assert page.locator("#artifact-preview .markdown h3").inner_text() == "Report"
    assert page.locator("#artifact-preview .markdown li").count() == 2
    assert page.locator("#artifact-preview pre").inner_text() == "code <b>x</b>"  # as text
    assert page.locator("#artifact-preview b").count() == 0
    md.click()  # a second click closes it
    page.wait_for_function("() => document.querySelector('#artifact-preview').hidden")
    csv = page.locator("li.file[data-path='outputs/table.csv'] button.preview-btn")
    for _ in range(3):
        csv.click()
    page.locator("#artifact-preview table").wait_for()
    assert (
        page.locator("#artifact-preview table").count() == 1 and page.locator("#artifact-preview tbody tr").count() == 2
    )
    page.locator("li.file[data-path='outputs/metrics.json'] button.preview-btn").click()
    page.wait_for_function(
        "() => document.querySelector('#artifact-preview pre')?.textContent.includes('\\n  \"accuracy\": 0.93')"
    )
    page.locator("button.thumb").click()
    page.wait_for_function(
        "() => document.querySelector('#lightbox img')?.complete && document.querySelector('#lightbox').open"
    )
    size = page.evaluate(
        "() => { const i = document.querySelector('#lightbox img'); return [i.naturalWidth, i.clientWidth]; }"
    )
    assert size == [64, 64]  # full size, not a thumbnail
    page.keyboard.press("Escape")
    assert console_errors == []


def test_a_live_run_page_follows_the_run_to_its_end(tmp_path, page, console_errors):
    """A run the store moves as a driver does: one point (a number), more points (a chart), output, then
    artifacts, exit code and Completed; the page follows every step without a reload."""
    from mltrain.workspace.runs import COMPLETED, FINALIZING

    root = tmp_path / "ws"
    run_id = "20260108_000000_live00"
    ws, run_dir = running_run(root, run_id, "started\n")
    ws.metrics.add(run_id, [{"t": 1.0, "k": "loss", "v": 1.0, "s": 0}])
    with serving(root, poll_interval=0.1) as ui:
        page.goto(f"{ui.url}/runs/{run_id}")
        page.locator(".tile[data-key=loss]").wait_for()
        assert page.locator("#run-status").inner_text() == "Running"
        assert page.locator("#exit-code").inner_text() == "-"
        assert page.locator("#cancel-run").count() == 0  # a read-only dashboard shows no write button
        ws.metrics.add(run_id, [{"t": 2.0, "k": "loss", "v": 0.5, "s": 1}, {"t": 2.0, "k": "acc", "v": 0.25, "s": 1}])
        page.locator(".chart[data-key=loss][data-drawn]").wait_for()  # two points: now a chart
        assert page.locator(".tile[data-key=loss]").count() == 0
        page.wait_for_function("() => document.querySelector('td[data-latest=acc]')?.textContent === '0.25'")
        page.wait_for_function("() => document.querySelector('td[data-latest=loss]')?.textContent === '0.5'")
        first = page.locator("#run-duration").inner_text()
        page.wait_for_function(f"() => document.querySelector('#run-duration').textContent !== '{first}'")  # it ticks
        ws.runs.set_status(run_id, FINALIZING)
        add_artifact(ws, run_id, "outputs/model.txt", b"weights")
        ws.runs.set_status(run_id, COMPLETED, exit_code=0)
        page.wait_for_function("() => document.querySelector('#run-status').textContent === 'Completed'")
        page.wait_for_function("() => document.querySelector('#exit-code').textContent === '0'")
        page.locator("li.file[data-path='outputs/model.txt']").wait_for()
        statuses = page.locator("#timeline tbody tr td:first-child").all_inner_texts()
        assert statuses == ["Queued", "Running", "Finalizing", "Completed"]
        end = page.locator("#run-duration").inner_text()
        time.sleep(1.2)
        assert page.locator("#run-duration").inner_text() == end  # it stopped with the run
    ws.db.dispose()
    assert console_errors == []


# -- sweeps and comparisons ------------------------------------------------------------------------------
def test_a_sweeps_page_lists_trials_best_first_with_linked_parallel_coordinates(ui, pages, page, console_errors):
    page.goto(f"{ui.url}/runs/{pages['sweep']}")
    rows = page.locator("#sweep-runs tbody tr")
    rows.first.wait_for()
    assert rows.evaluate_all("els => els.map(e => e.dataset.run)") == pages["children"][::-1]
    assert "★ best" in rows.first.inner_text() and rows.first.get_attribute("class") == "best"
    heads = page.locator("#sweep-runs th").all_inner_texts()
    assert heads == ["trial", "run", "status", "accuracy (highest first)", "C", "kernel", "loss"]
    assert page.locator("#arguments").count() == 0  # the base arguments the sweep did not use
    assert page.locator(".tile[data-key=children_completed]").count() == 1
    assert page.locator(".chart[data-key=children_completed]").count() == 0
    svg = page.locator("svg.pcoords")
    assert svg.locator("polyline.pc-line").count() == 6
    c_axis = page.locator("g.pc-axis[data-axis='0']")
    assert (
        "log scale" in (c_axis.text_content() or "") and c_axis.locator("text.tick").count() >= 5
    )  # 0.1 .. 10 with steps
    # brushing: drag along the accuracy axis over its top part keeps the best trials only
    svg.scroll_into_view_if_needed()
    hit = page.locator("rect.pc-hit[data-axis='2']").bounding_box()
    x = hit["x"] + hit["width"] / 2
    page.mouse.move(x, hit["y"] + 2)
    page.mouse.down()
    page.mouse.move(x, hit["y"] + hit["height"] * 0.3, steps=5)
    page.mouse.up()
    visible = page.locator("#sweep-runs tbody tr:visible").evaluate_all("els => els.map(e => e.dataset.run)")
    assert visible and set(visible) < set(pages["children"]) and visible[0] == pages["children"][5]
    assert page.locator("svg.pcoords polyline.pc-line.dim").count() == 6 - len(visible)
    page.mouse.click(x, hit["y"] + hit["height"] / 2)  # a click on the axis clears its range
    page.wait_for_function("() => document.querySelectorAll('#sweep-runs tbody tr:not([hidden])').length === 6")
    # hovering a line marks its trial in the table
    page.locator(f"polyline.pc-line[data-run='{pages['children'][0]}']").dispatch_event("mouseenter")
    assert page.locator("#sweep-runs tr.highlight").get_attribute("data-run") == pages["children"][0]
    assert console_errors == []


def test_compared_runs_keep_their_colour_in_every_view(ui, pages, page, console_errors):
    page.goto(f"{ui.url}/compare?runs={pages['d']},{pages['c']}")
    page.locator(".chart[data-key=accuracy][data-drawn]").wait_for()
    swatches = page.locator("#compare-metrics th .swatch").evaluate_all(
        "els => els.map(e => getComputedStyle(e).backgroundColor)"
    )
    markers = page.locator(".chart[data-key=accuracy] .u-series .u-marker").evaluate_all(
        "els => els.slice(1).map(e => getComputedStyle(e).borderColor)"
    )
    assert len(swatches) == 2 and markers == swatches
    lines = page.locator("svg.pcoords polyline.pc-line").evaluate_all("els => els.map(e => getComputedStyle(e).stroke)")
    assert sorted(lines) == sorted(swatches)
    assert page.locator("#compare-metrics th a").evaluate_all("els => els.map(e => e.getAttribute('href'))") == [
        f"/runs/{pages['d']}", f"/runs/{pages['c']}"]  # fmt: skip
    bars = page.locator("#singles figure[data-key=n_features] rect.bar")
    assert bars.count() == 1 and bars.get_attribute("data-value") == "4"  # one value: a bar, not a chart
    assert page.locator(".chart[data-key=n_features]").count() == 0
    assert page.locator("#compare-args td.mono").all_inner_texts().count("kernel") == 1
    assert page.locator("#compare-metrics td.mono").all_inner_texts().count("kernel") == 0  # an argument: once
    assert console_errors == []


# -- models and environments -----------------------------------------------------------------------------
def test_models_show_every_versions_aliases_and_read_only_shows_no_write_button(ui, pages, page, console_errors):
    page.goto(ui.url + "/models")
    versions = page.locator("#models td.versions")
    versions.wait_for()
    assert versions.inner_text().split() == ["iris-model:2", "@production", "iris-model:1", "@staging"]
    page.goto(ui.url + "/models/iris-model")
    page.locator("#versions").wait_for()
    assert page.locator("#versions button, #alias-form, .chip-x").count() == 0
    page.click("#versions a[href='/models/iris-model/1']")
    page.locator("#files").wait_for()
    assert page.locator("h1").inner_text().startswith("Model iris-model version 1")
    assert page.locator(".alias").inner_text() == "@staging" and page.locator(".chip-x").count() == 0
    lineage = page.locator("section:has(h2:text('Lineage'))")
    assert lineage.locator(f"a[href='/runs/{pages['a']}']").count() == 1
    assert lineage.locator(f"a[href='/environments#{ENV_HASH}']").inner_text().startswith("sklearn 1.5 (venv")
    assert page.locator("#run-metrics tbody tr").count() == 3  # accuracy, loss, kernel
    page.goto(ui.url + "/models/iris-model/2")
    page.locator("#files").wait_for()
    assert page.locator("section:has(h2:text('Lineage')) a[href='/endpoints/iris-ep']").count() == 1
    assert "not known" in page.locator("#input-schema").inner_text()
    assert console_errors == []


def test_alias_removal_and_a_refused_write_points_at_the_token_box(tmp_path, page, console_errors):
    root = tmp_path / "ws"
    seed_pages(root)
    ws = open_ws(root)
    with serving(root, allow_write=True, token=TOKEN) as ui:
        page.goto(f"{ui.url}/models/iris-model")
        chip = page.locator("#versions .alias[data-alias=staging] .chip-x")
        chip.click()
        page.wait_for_function("() => !document.querySelector('#flash').hidden")
        assert "token box" in page.locator("#flash").inner_text()
        assert "Authorization" not in page.locator("#flash").inner_text()
        assert page.evaluate("document.activeElement.id") == "token"
        assert "attention" in page.locator("#token").get_attribute("class")
        assert registry(ws).get("iris-model:1").aliases == ["staging"]
        page.fill("#token", TOKEN)
        page.dispatch_event("#token", "change")
        page.locator("#versions .alias[data-alias=staging] .chip-x").click()
        page.wait_for_function("() => !document.querySelector('#versions .alias[data-alias=staging]')")
        assert registry(ws).get("iris-model:1").aliases == []
        assert page.locator("#versions button:text('Archive')").count() == 2
    ws.db.dispose()
    console_errors[:] = [e for e in console_errors if "401" not in e]  # the refused write itself
    assert console_errors == []


def test_environments_show_name_and_version_apart_and_the_runs_that_used_them(ui, pages, page, console_errors):
    page.goto(ui.url + "/environments")
    row = page.locator(f"#environments tr[id='{ENV_HASH}']")
    row.wait_for()
    cells = row.locator("td").all_inner_texts()
    assert cells[:3] == ["sklearn", "1.5", "venv"]
    assert row.locator("td.env-runs a").evaluate_all("els => els.map(e => e.textContent)") == [pages["d"], pages["a"]]
    assert console_errors == []


# -- every page, small screens, error paths, stored HTML ---------------------------------------------------
PAGES = ["/", "/?col=arg:C&col=tag:stage&col=metric:accuracy&flat=1", "/runs/{a}", "/runs/{d}", "/runs/{sweep}",
         "/compare?runs={a},{b},{c},{d}", "/compare?sweep={sweep}", "/models", "/models/iris-model",
         "/models/iris-model/1", "/models/iris-model/2", "/endpoints", "/endpoints/iris-ep", "/environments",
         "/data", "/data/iris-train", "/data/iris-train/1", "/data/features/1", "/data/many/1", "/data/ref/1",
         "/runs/20990101_000000_ffffff", "/models/nosuch", "/models/iris-model/9", "/endpoints/nosuch",
         "/data/nosuch", "/data/iris-train/9"]  # fmt: skip


@pytest.mark.parametrize("width", [1440, 400])
def test_every_page_fits_the_window_without_console_errors(ui, pages, page, console_errors, width):
    page.set_viewport_size({"width": width, "height": 900})
    for path in PAGES:
        page.goto(ui.url + path.format(**pages))
        page.locator("body[data-ready]").wait_for()
        wide = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert wide[0] <= wide[1], (path, wide)
        assert "could not be loaded" not in page.locator("main").inner_text(), path
    assert console_errors == []


@pytest.mark.parametrize(
    "path", ["/runs/20990101_000000_ffffff", "/models/nosuch", "/models/iris-model/9", "/endpoints/nosuch"]
)
def test_a_missing_run_model_or_endpoint_gets_its_banner(ui, page, console_errors, path):
    page.goto(ui.url + path)
    page.locator("body[data-ready]").wait_for()
    assert "no " in page.locator("#not-found").inner_text()
    assert page.locator("main h1").inner_text() == "Not found"
    assert console_errors == []


def test_stored_html_reaches_every_new_view_as_text(ui, pages, page, console_errors):
    paths = [
        f"/?col=arg:{XSS}&col=metric:{XSS}&col=tag:{XSS}",
        f"/runs/{pages['d']}",
        f"/compare?runs={pages['d']},{pages['a']}",
    ]
    for path in paths:
        page.goto(ui.url + path.replace('"', "%22").replace("<", "%3C").replace(">", "%3E").replace(" ", "%20"))
        page.locator("body[data-ready]").wait_for()
        assert page.evaluate("window.__xss") is None, path
        assert page.locator("main img[src=x]").count() == 0, path
        assert XSS in page.locator("main").inner_text(), path
    page.goto(ui.url + "/")
    page.locator("#columns summary").click()
    assert page.locator(f"#columns input[value='arg:{XSS}']").count() == 1
    assert page.evaluate("window.__xss") is None
    assert console_errors == []
