"""The dashboard in a real headless Chromium (the Debian package, driven by Playwright): the runs
page lists and filters, a running job's chart gains points while we watch, a sweep's compare view
draws, an image artifact previews, a write without the token is refused, no page logs an error, a
run's problems are shown."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from support import request, start_mltrain, write_script

from .helpers import TOKEN, finished_run, open_ws, registry, serving

SLOW_JOB = """
import time
from mltrain import Run
run = Run.get_context()
for i in range(600):
    run.log("loss", 1.0 / (i + 1), step=i)
    print(f"step {i} done", flush=True)
    time.sleep(0.2)
"""


@pytest.fixture(scope="module")
def ui(seeded):
    with serving(seeded["root"]) as server:
        yield server


def test_runs_page_lists_runs_and_filters_them(ui, seeded, page, console_errors):
    page.goto(ui.url + "/")
    rows = page.locator("#runs tbody tr")
    rows.first.wait_for()
    assert rows.count() == 4
    assert page.locator("#page-info").inner_text() == "1–4 of 4"
    page.select_option("select[name=status]", "Failed")
    page.click("#filters button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#runs tbody tr').length === 1")
    assert rows.first.get_attribute("data-run") == seeded["b"]
    assert "status=Failed" in page.url
    page.select_option("select[name=status]", "")
    page.fill("input[name=metric]", "accuracy>=0.95")
    page.click("#filters button[type=submit]")
    page.wait_for_function(f"() => document.querySelector('#runs tbody tr').dataset.run === '{seeded['c']}'")
    assert rows.count() == 1
    page.fill("input[name=metric]", "")
    page.click("#filters button[type=submit]")
    page.wait_for_function("() => document.querySelector('#page-info').textContent === '1–4 of 4'")
    page.click("th button.sort[data-sort='metric:accuracy']")  # highest first
    page.wait_for_function(f"() => document.querySelector('#runs tbody tr').dataset.run === '{seeded['c']}'")
    page.check("input[name=flat]")  # the sweep's runs as rows of their own
    page.click("#filters button[type=submit]")
    page.wait_for_function("() => document.querySelector('#page-info').textContent === '1–10 of 10'")
    page.uncheck("input[name=flat]")
    page.click("#filters button[type=submit]")
    page.wait_for_function("() => document.querySelector('#page-info').textContent === '1–4 of 4'")
    # the sweep is one row; it opens to its six runs
    sweep = page.locator(f"tr[data-run='{seeded['sweep']}'] td.toggle button")
    sweep.click()
    page.wait_for_function("() => document.querySelectorAll('#runs tbody tr.child').length === 6")
    sweep.click()
    page.wait_for_function("() => document.querySelectorAll('#runs tbody tr.child').length === 0")
    assert console_errors == []


def test_a_running_jobs_chart_and_log_grow_while_watched(project, page, console_errors):
    write_script(project / "src", "slow.py", SLOW_JOB)
    proc = start_mltrain(project, "environment=system", "~register", "job.source_dir=src", "job.script=slow.py",
                         "experiment_name=live")  # fmt: skip
    try:
        ws = open_ws(project / ".mltrain")
        run_id = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            runs = ws.runs.list()
            if runs and runs[0]["status"] == "Running" and ws.metrics.count(runs[0]["id"]):
                run_id = runs[0]["id"]
                break
            time.sleep(0.2)
        assert run_id, proc.communicate(timeout=5) if proc.poll() is not None else "the run never started"
        with serving(project / ".mltrain", poll_interval=0.3) as ui:
            page.goto(f"{ui.url}/runs/{run_id}")
            chart = page.locator(".chart[data-key=loss]")
            chart.wait_for()
            page.wait_for_function("() => document.querySelector('.chart[data-key=loss]').dataset.points > 0")
            before = int(chart.get_attribute("data-points"))
            # new points arrive over the event stream and are drawn, without reloading the page
            page.wait_for_function(
                f"() => Number(document.querySelector('.chart[data-key=loss]').dataset.points) >= {before + 5}",
                timeout=60_000,
            )
            page.wait_for_function(
                f"() => document.querySelector('#log').textContent.includes('step {before + 5} done')", timeout=60_000
            )
            assert page.locator("#run-status").inner_text() == "Running"
            # x = time fetches the points' times once; live points keep arriving, none lost or doubled
            page.select_option(".controls select.x-mode", "wall")
            grown = int(chart.get_attribute("data-points"))
            page.wait_for_function(
                f"() => Number(document.querySelector('.chart[data-key=loss]').dataset.points) >= {grown + 3}",
                timeout=60_000,
            )
            page.check(".controls input.log-scale")
            proc.send_signal(signal.SIGINT)
            page.wait_for_function(
                "() => document.querySelector('#run-status').textContent === 'Canceled'", timeout=60_000
            )
            points = int(chart.get_attribute("data-points"))
            stored = len(ws.metrics.series(run_id, "loss")["value"])
            assert points == stored  # every stored point drawn once, none twice
        assert console_errors == []
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_sweep_compare_view_draws(ui, seeded, page, console_errors):
    page.goto(f"{ui.url}/compare?sweep={seeded['sweep']}")
    page.locator("svg.pcoords").wait_for()
    assert page.locator("svg.pcoords polyline.pc-line").count() == 6
    assert page.locator("#scatters figure").count() == 2  # C and kernel
    assert page.locator("#scatters circle.pt").count() == 12
    assert page.locator("#sweep-runs tbody tr").count() == 6
    page.wait_for_function("() => document.querySelectorAll('.chart[data-drawn]').length === 2")  # accuracy, loss
    assert page.locator(".chart[data-key=accuracy] .u-legend .u-series").count() == 1 + 6  # x + six runs
    page.select_option("#plot-metric", "loss")
    assert "loss" in page.locator("#scatters figcaption").first.inner_text()
    page.goto(f"{ui.url}/compare?runs={seeded['a']},{seeded['b']}")
    page.wait_for_function("() => document.querySelectorAll('.chart[data-drawn]').length === 2")
    assert page.locator("#compare-args tr.differs").count() == 2  # C and kernel differ
    assert console_errors == []


def test_image_artifact_previews(ui, seeded, page, console_errors):
    page.goto(f"{ui.url}/runs/{seeded['a']}")
    img = page.locator("img.artifact-image")
    img.wait_for()
    page.wait_for_function("() => document.querySelector('img.artifact-image').complete")
    assert page.evaluate("document.querySelector('img.artifact-image').naturalWidth") == 8
    page.click("li.file[data-path='outputs/predictions.csv'] button.preview-btn")
    page.locator("#artifact-preview table").wait_for()
    assert page.locator("#artifact-preview tbody tr").count() == 3
    assert console_errors == []


def test_write_action_without_the_token_is_refused(tmp_path, page):
    from .helpers import seed

    root = tmp_path / "ws"
    seed(root)
    ws = open_ws(root)
    with serving(root, allow_write=True, token=TOKEN) as ui:
        page.goto(f"{ui.url}/models/iris-model")
        page.locator("#alias-form").wait_for()
        page.select_option("select[name=version]", "1")
        page.fill("input[name=alias]", "production")
        page.click("#alias-form button")
        page.wait_for_function("() => !document.querySelector('#flash').hidden")
        assert "token" in page.locator("#flash").inner_text()
        assert registry(ws).get("iris-model:1").aliases == []
        page.fill("#token", TOKEN)
        page.dispatch_event("#token", "change")
        page.click("#alias-form button")
        page.wait_for_function(
            "() => document.querySelector('#versions tr[data-version=\"1\"]').textContent.includes('@production')"
        )
        assert registry(ws).get("iris-model@production").version == 1
    ws.db.dispose()


PAGES = ["/", "/runs/{a}", "/runs/{sweep}", "/compare?runs={a},{b},{c}", "/compare?sweep={sweep}", "/models",
         "/models/iris-model", "/endpoints", "/environments"]  # fmt: skip


def test_no_console_errors_on_any_page(ui, seeded, page, console_errors):
    for path in PAGES:
        page.goto(ui.url + path.format(**seeded))
        page.locator("main h1").wait_for()
        page.wait_for_load_state("networkidle")
        assert "could not be loaded" not in page.locator("main").inner_text(), path
    assert console_errors == []


def test_a_runs_problems_are_on_its_page_and_in_the_api(tmp_path, page, console_errors):
    root = tmp_path / "ws"
    ws = open_ws(root)
    run_id = finished_run(ws, "20261201_120000_aaaaaa", "probs", {"C": 1}, {"acc": [0.9]})
    problem = "registration of m failed: run 20261201_120000_aaaaaa has no outputs/nope.joblib to register as m"
    ws.runs.add_problems(run_id, [problem])
    with serving(root) as ui:
        assert request(ui.url, "GET", f"/api/runs/{run_id}").json()["run"]["problems"] == [problem]
        page.goto(f"{ui.url}/runs/{run_id}")
        page.locator(".problem").wait_for()
        assert page.locator(".problem").inner_text() == problem
        assert page.locator("#run-status").inner_text() == "Completed"
    ws.db.dispose()
    assert console_errors == []
