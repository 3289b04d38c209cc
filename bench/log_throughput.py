"""In-script logging throughput: `Run.log` calls per second inside a real mltrain run, and proof that
every call was stored, how fast they were stored and how long the run took to end after its script;
MLflow's `log_metric` and `log_batch` to SQLite as peers in the same run.

    python bench/log_throughput.py [--calls 1000000] [--no-mlflow]

Targets: >= 200,000 scalar calls/s with none lost; stored >= 200,000 rows/s (rows over the time
from the script's start to the last row stored); the run ends <= 2 s after its script.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import job_overrides, peer_venv, save  # noqa: E402

LOOP = """
import json, sys, time
from mltrain import Run
n = int(sys.argv[-1])
run = Run.get_context()
log = run.log
began = time.time()
start = time.perf_counter()
for i in range(n):
    log("loss", i * 0.001, step=i)
took = time.perf_counter() - start
run.flush()
print(json.dumps({"calls": n, "seconds": took, "rate": n / took, "began": began, "ended": time.time()}))
"""

MLFLOW = """
import json, sys, time, mlflow
from mlflow.entities import Metric
mlflow.set_tracking_uri("sqlite:///" + sys.argv[3])
n = int(sys.argv[1]); mode = sys.argv[2]
with mlflow.start_run():
    start = time.perf_counter()
    if mode == "log_metric":
        for i in range(n):
            mlflow.log_metric("loss", i * 0.001, step=i)
    else:
        client = mlflow.tracking.MlflowClient(); rid = mlflow.active_run().info.run_id
        ts = int(time.time() * 1000)
        for lo in range(0, n, 1000):
            client.log_batch(rid, metrics=[Metric("loss", i * 0.001, ts, i) for i in range(lo, min(n, lo + 1000))])
    took = time.perf_counter() - start
print(json.dumps({"calls": n, "seconds": took, "rate": n / took}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--no-mlflow", action="store_true", help="skip the MLflow peers")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mltrain-bench-log-"))
    (work / "src").mkdir()
    (work / "src" / "loop.py").write_text(LOOP)
    overrides = [*job_overrides("loop.py"), f"job.args=[{args.calls}]", "experiment_name=bench"]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mltrain", *overrides],
        cwd=work,
        capture_output=True,
        text=True,
    )
    total = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    inside = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))

    from mltrain.workspace import Workspace

    ws = Workspace.open(str(work / ".mltrain"))
    run = ws.runs.list()[0]
    stored = ws.metrics.count(run["id"])
    steps_ok = stored == args.calls
    finalizing = next(h["ts"] for h in ws.runs.history(run["id"]) if h["status"] == "Finalizing")
    store_rate = stored / (finalizing - inside["began"])
    after_script = run["ended_at"] - inside["ended"]
    rows = [("mltrain Run.log", inside["rate"], stored), ("mltrain stored rows/s", store_rate, stored)]
    results = {
        "calls": args.calls,
        "mltrain": {
            **inside,
            "stored": stored,
            "run_wall_s": total,
            "stored_rows_per_s": store_rate,
            "run_end_after_script_s": after_script,
        },
    }

    if not args.no_mlflow:
        python = peer_venv("mlflow", ["mlflow-skinny", "sqlalchemy", "alembic"])
        n_single = min(args.calls, 2_000)  # log_metric is a database round trip per call
        for mode, n in (("log_metric", n_single), ("log_batch", min(args.calls, 200_000))):
            out = subprocess.run(
                [str(python), "-c", MLFLOW, str(n), mode, str(work / f"mlflow-{mode}.db")],
                cwd=work,
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                print(f"MLflow {mode} failed: {out.stderr[-2000:]}")
                continue
            res = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((f"MLflow {mode}", res["rate"], n))
            results[f"mlflow_{mode}"] = res

    print(f"{'logger':<22} {'calls/s':>12} {'stored':>10}")
    for name, rate, count in rows:
        print(f"{name:<22} {rate:>12,.0f} {count:>10,}")
    print(
        f"\nmltrain: {args.calls:,} calls, {stored:,} stored ({'none lost' if steps_ok else 'LOST SOME'}); "
        f"whole run incl. start-up and ingest {total:.1f} s; the run ended {after_script:.2f} s after its script"
    )
    for name, rate, _ in rows[2:]:
        print(f"ratio mltrain Run.log / {name}: {inside['rate'] / rate:,.0f}x")
        print(f"ratio mltrain stored / {name}: {store_rate / rate:,.0f}x")
    print(f"results: {save('log_throughput', results)}")
    if not steps_ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
