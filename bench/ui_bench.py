"""Dashboard speed: a run with a 100,000-point series drawn in headless Chromium (time from
navigation start until its chart has drawn), and the runs page API over a 10,000-run workspace
(server side: the app's own time, from its Server-Timing header; HTTP round trips on 127.0.0.1 too). Budgets: < 1 s and
< 100 ms. No peer: absolute figures.

    .venv/bin/python bench/ui_bench.py
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, median, save

sys.path.insert(0, str(ROOT / "tests"))
from support import request  # noqa: E402

RUNS = 10_000
POINTS = 100_000
REPEATS = 20
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def config_of(rng: random.Random, i: int) -> str:
    """A resolved config as a run records it (about 1.5 KB of JSON), with the job's arguments."""
    return json.dumps(
        {
            "experiment_name": f"exp{i % 10}",
            "job": {
                "source_dir": "/home/user/project/src",
                "script": "train.py",
                "arguments": {
                    "C": rng.choice([0.01, 0.1, 1.0, 10.0]),
                    "kernel": rng.choice(["rbf", "linear", "poly"]),
                    "max_iter": rng.randrange(100, 1000),
                    "data": "/data/iris.csv",
                },  # fmt: skip
            },
            "environment": {
                "name": "sklearn",
                "version": None,
                "python": "3.11",
                "conda_file": None,
                "pip": ["scikit-learn==1.5.2", "pandas", "numpy", "joblib"],
                "env_vars": {},
            },  # fmt: skip
            "compute": {"_target_": "mltrain.compute.local.LocalTarget", "max_concurrent": 2, "timeout_s": None},
            "register": {
                "name": "iris-model",
                "path": "outputs/model.joblib",
                "tags": {},
                "properties": {},
                "description": "an SVC on iris",
                "cpu": 1.0,
                "memory_gb": 0.5,
            },  # fmt: skip
            "workspace": {"root": ".mltrain", "db_url": None, "artifact_root": None},
            "snapshot": {"max_files": 2000, "max_bytes": 300000000, "ignore": ["*.pyc", "__pycache__", ".git"]},
            "hydra": {"run": {"dir": "outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}"}, "job": {"chdir": False}},
            "notes": "x" * 400,
        }
    )


def seed(root: Path) -> str:
    """10,000 runs (three metrics each, tags, a few sweeps, a resolved config with arguments) written
    in bulk, and one run whose 'loss' series has 100,000 points stored through the metric store;
    returns that run's id."""
    from mltrain.workspace import Workspace, WorkspaceSettings
    from mltrain.workspace import tables as t
    from mltrain.workspace.db import bulk_insert

    ws = Workspace(WorkspaceSettings.resolve(str(root)))
    rng = random.Random(1)
    now = time.time() - RUNS
    runs, status, metrics, tags = [], [], [], []
    with ws.db.write() as conn:
        exps = [ws.runs.experiment_id(conn, f"exp{i}") for i in range(10)]
        for i in range(RUNS):
            rid = f"20260101_{i:06d}_bench0"
            parent = f"20260101_{i - i % 50:06d}_bench0" if i % 50 else None  # sweeps of 49 children
            st = rng.choice(["Completed", "Completed", "Completed", "Failed", "Canceled"])
            ts = now + i
            runs.append((rid, exps[i % 10], parent, st, ts, ts, ts + 5, "train.py", "local", False, config_of(rng, i)))
            status.append((rid, st, ts + 5))
            for k in range(3):
                metrics.append((rid, "accuracy", "scalar", rng.random(), None, k, ts + k))
            metrics.append((rid, "loss", "scalar", rng.random(), None, None, ts))
            if i % 7 == 0:
                tags.append((rid, "stage", rng.choice(["dev", "prod"])))
        cols = ("id", "experiment_id", "parent_run_id", "status", "created_at", "started_at", "ended_at", "script",
                "compute", "cancel_requested", "config")  # fmt: skip
        bulk_insert(conn, t.runs, cols, runs)
        bulk_insert(conn, t.run_status, ("run_id", "status", "ts"), status)
        bulk_insert(conn, t.metrics, ("run_id", "key", "kind", "value", "data", "step", "ts"), metrics)
        bulk_insert(conn, t.tags, ("run_id", "key", "value"), tags)
    big = "20260102_000000_big000"
    ws.runs.create(big, "big", script="train.py")
    ws.metrics.add(
        big,
        ({"t": now + i * 0.01, "k": "loss", "v": 1.0 / (1 + i) + rng.random() * 1e-3, "s": i} for i in range(POINTS)),
    )
    ws.runs.set_status(big, "Completed")
    ws.db.dispose()
    return big


def timing(header: str, name: str) -> float:
    """Seconds of entry ``name`` of a Server-Timing header (``app;dur=12.5, cpu;dur=11.0``, in ms)."""
    for entry in header.split(","):
        key, _, dur = entry.strip().partition(";dur=")
        if key == name:
            return float(dur) / 1000
    raise ValueError(f"no {name} in Server-Timing {header!r}")


def api_times(url: str) -> dict[str, dict[str, float]]:
    queries = {
        "first page (50, newest first)": "/api/runs",
        "sorted by a metric": "/api/runs?sort=-metric:accuracy",
        "sorted by a metric, all runs (flat)": "/api/runs?flat=1&sort=-metric:accuracy",
        "filtered by metric and tag": "/api/runs?flat=1&metric=accuracy>0.5&tag=stage=prod",
        "last page": "/api/runs?flat=1&offset=9950",
        "sorted by an argument, all runs (flat)": "/api/runs?flat=1&sort=-arg:C",
        "sorted by an argument, filtered by a metric": "/api/runs?flat=1&sort=arg:kernel&metric=accuracy>0.5",
        "sorted by a tag, all runs (flat)": "/api/runs?flat=1&sort=-tag:stage",
        "the table's columns (metric, argument, tag names)": "/api/columns",
    }
    out = {}
    for name, path in queries.items():
        assert request(url, "GET", path).status == 200, path  # warm
        times, server, cpu = [], [], []
        for _ in range(REPEATS):
            start = time.perf_counter()
            resp = request(url, "GET", path)
            times.append(time.perf_counter() - start)
            assert resp.status == 200
            server.append(timing(resp.headers["server-timing"], "app"))  # the app's own time
            cpu.append(timing(resp.headers["server-timing"], "cpu"))  # its CPU time: steadier on a busy machine
        out[name] = {
            "server_median_ms": median(server) * 1000,
            "server_max_ms": max(server) * 1000,
            "server_cpu_median_ms": median(cpu) * 1000,
            "round_trip_median_ms": median(times) * 1000,
            "total": resp.json().get("total", "-"),
        }
    return out


def chart_times(url: str, run_id: str) -> tuple[list[float], list[float]]:
    """Seconds from navigation start until the chart has drawn, and the server's time on the series."""
    from playwright.sync_api import sync_playwright

    out, server = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        for _ in range(5):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            served: list[float] = []
            page.on(
                "response",
                lambda r, served=served: (
                    served.append(timing(r.headers["server-timing"], "app")) if "/series" in r.url else None
                ),
            )
            page.goto(f"{url}/runs/{run_id}")
            page.wait_for_function("() => window.mltrainDrawn && 'loss' in window.mltrainDrawn", timeout=60_000)
            points = page.evaluate("() => Number(document.querySelector('.chart[data-key=loss]').dataset.points)")
            assert points == POINTS, points
            out.append(page.evaluate("() => window.mltrainDrawn['loss']") / 1000)
            server.append(served[0] if served else float("nan"))
            page.close()
        browser.close()
    return out, server


def main() -> None:
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (figures scale with it)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        start = time.perf_counter()
        big = seed(root)
        print(f"seeded {RUNS} runs and a {POINTS}-point series in {time.perf_counter() - start:.1f} s")
        server = subprocess.Popen(
            [sys.executable, "-m", "mltrain.cli.main", "--workspace", str(root), "ui", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            url = line.split(" at ")[1].strip().rstrip("/")
            api = api_times(url)
            charts, series_server = chart_times(url, big)
        finally:
            server.terminate()
            server.communicate(timeout=30)
    for name, r in api.items():
        print(
            f"runs API, {name:50s} server median {r['server_median_ms']:5.1f} ms "
            f"(CPU {r['server_cpu_median_ms']:5.1f} ms), "
            f"max {r['server_max_ms']:5.1f} ms; "
            f"round trip median {r['round_trip_median_ms']:5.1f} ms ({r['total']} match)"
        )
    worst = max(r["server_median_ms"] for r in api.values())
    print(f"chart of {POINTS} points drawn after {median(charts):.3f} s (median of {len(charts)}; all: "
          f"{', '.join(f'{c:.3f}' for c in charts)}); of which the server read and sent its series in "
          f"{median(series_server):.3f} s (median)")  # fmt: skip
    worst_cpu = max(r["server_cpu_median_ms"] for r in api.values())
    verdict = {"chart_budget_s": 1.0, "chart_ok": median(charts) < 1.0, "api_budget_ms": 100, "api_ok": worst < 100,
               "api_cpu_ok": worst_cpu < 100, "load_average": os.getloadavg()[0]}  # fmt: skip
    print(f"budgets: chart < 1 s {'met' if verdict['chart_ok'] else 'MISSED'}; runs API < 100 ms "
          f"{'met' if verdict['api_ok'] else 'MISSED'} (slowest server median {worst:.1f} ms; in CPU time "
          f"{worst_cpu:.1f} ms: {'met' if verdict['api_cpu_ok'] else 'MISSED'}); load average at the end "
          f"{verdict['load_average']:.1f} on {os.cpu_count()} cores")  # fmt: skip
    path = save(
        "ui_bench",
        {"runs": RUNS, "points": POINTS, "api": api, "chart_s": charts, "series_server_s": series_server, **verdict},
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
