"""Scoring throughput: mltrain's server against `mlflow models serve` and a bare Starlette endpoint.

    python bench/serving/run.py [--duration 5] [--rounds 2] [--concurrency 1,16,64] [--rows 1,100] [--workers2]
                                [--no-mlflow]

Every server scores the same iris SVC (fit on a DataFrame, saved with joblib), under the same load
generator (wrk, POST with a Lua script) in the same run; cells are interleaved across servers so machine
noise hits all alike, and each cell keeps the best of ``--rounds`` runs. Servers:
  mltrain          python -m mltrain.serving, 1 worker, key auth + validation + metrics on (batching on: default)
  mltrain-nobatch  the same with batch_max_rows=0 (one model call per request)
  bare             Starlette on uvicorn (uvloop + httptools), orjson, the same predict; nothing else
  mlflow           mlflow models serve --env-manager local -w 1 (its own venv: bench/.venvs/mlflow-serving)
  (--workers2 adds mltrain-w2 and mlflow-w2 with 2 workers)
plus the in-process predict rate (no HTTP) as the upper bound. Target (DESIGN.md): at c=16,
mltrain >= 4x mlflow and >= 90% of bare. Results: a table, the ratios, and bench/results/serving.json.
Needs wrk: installed with apt-get when missing and running as root, otherwise say so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import ROOT, peer_venv, save  # noqa: E402

START_TIMEOUT_S = 240.0

MLFLOW_SAVE = """
import sys, joblib, mlflow.sklearn
mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2])
"""


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get install -y wrk) ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, capture_output=True)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, capture_output=True)
        path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk is needed: install it (Debian/Ubuntu: sudo apt-get install -y wrk) and run again")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes, key: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Server:
    name: str
    cmd: list[str]
    score_url: str = ""
    key: str | None = None
    payloads: dict[int, Path] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    ready_file: Path | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self, work: Path) -> None:
        self.log = work / f"{self.name}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=work,
            )

    def wait_ready(self, probe: bytes) -> None:
        assert self.proc is not None and self.log is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited early:\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name} not ready after {START_TIMEOUT_S} s:\n{self.log.read_text()[-3000:]}")
            if self.ready_file is not None:
                if self.ready_file.exists():
                    self.port = json.loads(self.ready_file.read_text())["port"]
                    self.score_url = f"http://127.0.0.1:{self.port}/score"
                    return
            else:
                try:
                    status, _ = post(self.score_url, probe, self.key)
                    if status == 200:
                        return
                except (OSError, urllib.error.URLError):
                    pass
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM to the process group this script started (by its id), then SIGKILL if needed."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass


def train(work: Path) -> tuple[Any, Any, Path]:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.svm import SVC

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = SVC().fit(X, y)
    path = work / "iris_svc.joblib"
    joblib.dump(model, path)
    return model, X, path


def payloads(work: Path, X: Any, rows: list[int]) -> tuple[dict[int, Path], dict[int, Path], dict[int, list]]:
    """Per row count: mltrain/bare body file, mlflow body file, the rows themselves."""
    ours, theirs, data = {}, {}, {}
    values = X.values.tolist()
    for n in rows:
        chunk = [values[i % len(values)] for i in range(n)]
        data[n] = chunk
        ours[n] = work / f"body-{n}.json"
        ours[n].write_text(json.dumps({"data": chunk}))
        theirs[n] = work / f"body-mlflow-{n}.json"
        theirs[n].write_text(json.dumps({"dataframe_split": {"columns": list(X.columns), "data": chunk}}))
    return ours, theirs, data


def wrk_cell(wrk: str, server: Server, rows: int, conc: int, seconds: float) -> dict[str, Any]:
    threads = 1 if conc == 1 else 2
    env = {**os.environ, "BENCH_BODY": str(server.payloads[rows]), "BENCH_AUTH": server.key or ""}
    cmd = [
        wrk,
        f"-t{threads}",
        f"-c{conc}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "post.lua"),
        server.score_url,
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH_JSON "))
    res = json.loads(line.removeprefix("BENCH_JSON "))
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    res["errors"] = sum(res[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return res


def in_process_rate(model: Any, data: dict[int, list], seconds: float = 2.0) -> dict[int, float]:
    import warnings

    import numpy as np

    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    rates = {}
    for n, rows in data.items():
        X = np.asarray(rows, dtype=float)
        model.predict(X)
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model.predict(X)
            calls += 1
        rates[n] = calls / (time.perf_counter() - start)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per cell (default 5)")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated client counts")
    parser.add_argument("--rows", default="1,100", help="comma-separated rows per request")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every cell; the best is kept (default 2)")
    parser.add_argument("--workers2", action="store_true", help="also run mltrain and mlflow with 2 workers")
    parser.add_argument("--no-mlflow", action="store_true", help="skip the mlflow peer")
    args = parser.parse_args()
    concurrency = [int(c) for c in args.concurrency.split(",")]
    row_counts = [int(r) for r in args.rows.split(",")]
    wrk = ensure_wrk()

    import sklearn

    work = Path(tempfile.mkdtemp(prefix="mltrain-bench-serving-"))
    model, X, model_path = train(work)
    ours, theirs, data = payloads(work, X, row_counts)
    expected = {n: model.predict(X.iloc[[i % len(X) for i in range(n)]]).tolist() for n in row_counts}
    key = secrets.token_urlsafe(32)
    keys_file = work / "keys.json"
    digest = hashlib.sha256(key.encode()).hexdigest()
    keys_file.write_text(json.dumps({"primary": digest, "secondary": hashlib.sha256(b"unused").hexdigest()}))
    sha = hashlib.sha256(model_path.read_bytes()).hexdigest()
    env_pythonpath = {"PYTHONPATH": str(ROOT)}

    def mltrain_server(name: str, workers: int, **extra: Any) -> Server:
        config = {
            "name": "iris",
            "model_name": "iris-svc",
            "model_version": "1",
            "model_path": str(model_path),
            "model_sha256": sha,
            "model_format": "joblib",
            "host": "127.0.0.1",
            "port": 0,
            "workers": workers,
            "auth": True,
            "keys_file": str(keys_file),
            "ready_file": str(work / f"{name}.ready.json"),
            **extra,
        }
        (work / f"{name}.config.json").write_text(json.dumps(config))
        return Server(
            name,
            [sys.executable, "-m", "mltrain.serving", str(work / f"{name}.config.json")],
            key=key,
            payloads=ours,
            env=env_pythonpath,
            ready_file=work / f"{name}.ready.json",
        )

    servers = [mltrain_server("mltrain", 1), mltrain_server("mltrain-nobatch", 1, batch_max_rows=0)]
    port = free_port()
    servers.append(
        Server(
            "bare",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bare_app:app",
                "--app-dir",
                str(HERE),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
                "--workers",
                "1",
            ],
            score_url=f"http://127.0.0.1:{port}/score",
            payloads=ours,
            env={"BENCH_MODEL": str(model_path)},
        )
    )
    mlflow_version = None
    if not args.no_mlflow:
        print("preparing the mlflow venv (bench/.venvs/mlflow-serving) ...", flush=True)
        py = peer_venv("mlflow-serving", ["mlflow", f"scikit-learn=={sklearn.__version__}"])
        mlflow_model = work / "mlflow-model"
        subprocess.run(
            [str(py), "-c", MLFLOW_SAVE, str(model_path), str(mlflow_model)], check=True, capture_output=True
        )
        mlflow_version = subprocess.run(
            [str(py), "-c", "import mlflow; print(mlflow.__version__)"], capture_output=True, text=True, check=True
        ).stdout.strip()
        for name, workers in [("mlflow", 1), *([("mlflow-w2", 2)] if args.workers2 else [])]:
            port = free_port()
            servers.append(
                Server(
                    name,
                    [
                        str(py.parent / "mlflow"),
                        "models",
                        "serve",
                        "-m",
                        str(mlflow_model),
                        "--env-manager",
                        "local",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "-w",
                        str(workers),
                    ],
                    score_url=f"http://127.0.0.1:{port}/invocations",
                    payloads=theirs,
                    env={
                        "MLFLOW_TRACKING_URI": f"file:{work / 'mlruns'}",
                        "PATH": f"{py.parent}{os.pathsep}{os.environ['PATH']}",
                    },
                )
            )
    if args.workers2:
        servers.insert(2, mltrain_server("mltrain-w2", 2))

    print(f"starting {', '.join(s.name for s in servers)} ...", flush=True)
    try:
        for s in servers:
            s.start(work)
        for s in servers:
            s.wait_ready(s.payloads[row_counts[0]].read_bytes())
            for n in row_counts:  # every server must give the model's predictions before it is timed
                status, body = post(s.score_url, s.payloads[n].read_bytes(), s.key)
                got = body.get("predictions") if isinstance(body, dict) else body
                if status != 200 or got != expected[n]:
                    raise SystemExit(f"{s.name}: wrong answer for {n} rows: {status} {str(body)[:300]}")
            wrk_cell(wrk, s, row_counts[0], 16, 1.0)  # warm-up
        print(f"load: wrk, {args.duration:g} s per cell; machine load average {os.getloadavg()[0]:.2f}", flush=True)
        best: dict[tuple[str, int, int], dict[str, Any]] = {}
        for round_ in range(1, args.rounds + 1):
            for n in row_counts:
                for c in concurrency:
                    for s in servers:
                        res = wrk_cell(wrk, s, n, c, args.duration)
                        res.update(server=s.name, rows=n, concurrency=c, round=round_)
                        cell = (s.name, n, c)
                        if cell not in best or res["rps"] > best[cell]["rps"]:
                            best[cell] = res
                        print(
                            f"  round {round_} {s.name:16s} rows={n:<4d} c={c:<3d} {res['rps']:9.0f} req/s  "
                            f"p50 {res['p50_us'] / 1000:7.2f} ms  p99 {res['p99_us'] / 1000:7.2f} ms  "
                            f"errors {res['errors']}",
                            flush=True,
                        )
        results = list(best.values())
    finally:
        for s in servers:
            s.stop()
    predict_rate = in_process_rate(model, data)

    def rps(name: str, n: int, c: int) -> float | None:
        for r in results:
            if r["server"] == name and r["rows"] == n and r["concurrency"] == c:
                return r["rps"]
        return None

    print()
    print(f"best of {args.rounds} round(s) per cell (machine noise only ever slows a cell down)")
    header = f"{'server':16s} {'rows':>4s} {'c':>3s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>6s}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['server']:16s} {r['rows']:4d} {r['concurrency']:3d} {r['rps']:9.0f} {r['p50_us'] / 1000:8.2f} "
            f"{r['p99_us'] / 1000:8.2f} {r['errors']:6d}"
        )
    for n, rate in predict_rate.items():
        print(
            f"{'in-process':16s} {n:4d} {'-':>3s} {rate:9.0f}   (model.predict calls/s, no HTTP: upper bound "
            f"without batching)"
        )
    ratios: dict[str, float] = {}
    if 16 in concurrency:
        print("\nratios at c=16:")
        for n in row_counts:
            for ours_name, peer in [
                ("mltrain", "mlflow"),
                ("mltrain", "bare"),
                ("mltrain-nobatch", "bare"),
                ("mltrain-nobatch", "mlflow"),
                ("mltrain-w2", "mlflow-w2"),
            ]:
                a, b = rps(ours_name, n, 16), rps(peer, n, 16)
                if a and b:
                    ratios[f"{ours_name}/{peer} rows={n}"] = a / b
                    print(f"  {ours_name}/{peer} rows={n}: {a / b:.2f}x")
    targets = {}
    for n in row_counts:
        vs_mlflow, vs_bare = ratios.get(f"mltrain/mlflow rows={n}"), ratios.get(f"mltrain/bare rows={n}")
        if vs_mlflow is not None and vs_bare is not None:
            targets[n] = vs_mlflow >= 4 and vs_bare >= 0.9
            verdict = "met" if targets[n] else "NOT met"
            print(f"  target (>= 4x mlflow and >= 0.9x bare at c=16), rows={n}: {verdict}")
    path = save(
        "serving",
        {
            "command": "python bench/serving/run.py " + " ".join(sys.argv[1:]),
            "duration_s": args.duration,
            "rounds": args.rounds,
            "versions": {"scikit-learn": sklearn.__version__, "mlflow": mlflow_version},
            "results": results,
            "in_process_predict_calls_per_s": {str(k): v for k, v in predict_rate.items()},
            "ratios_c16": ratios,
            "target_met": {str(k): v for k, v in targets.items()},
        },
    )
    print(f"\nwritten {path}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
