"""Environment benchmarks, one command: ``python bench/env_bench.py [--repeats 30] [--runs 5]``.

1. cold venv build of the sklearn environment (lock + ``uv venv`` + ``uv pip sync``, empty uv cache,
   empty mltrain cache, new workspace) vs ``python -m venv`` + ``pip install --no-cache-dir`` of the
   same requirements, in the same run; target: pip / mltrain >= 5.
2. warm resolution of the sklearn environment (cache hit): ``EnvSpec.from_config`` + ``resolve`` +
   ``builder.materialise``, median of N; target <= 0.1 s.
3. how long ``python -m mltrain environment=system`` (no-op script, warm) spends resolving its
   environment: the run plan's ``resolve`` (spec and lock) and ``prepare`` (materialise,
   record), timed inside the real command (with .pyc files written, as after an install);
   reported, no target.

pip runs with its configuration files and find-links switched off (PIP_CONFIG_FILE=/dev/null), so
that it installs from the same index as uv. Prints a table, writes bench/results/env_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, job_overrides, median, save  # noqa: E402

TIMED_APP = """
import json, sys, time
start = time.perf_counter()
timings = {}
import mltrain.compute.base as compute_base
import mltrain.environments.resolve as env_resolve

def timed(cls, name):
    original = getattr(cls, name)
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            timings[name] = time.perf_counter() - t
    setattr(cls, name, wrapper)

timed(env_resolve, "resolve")
timed(compute_base.ComputeTarget, "prepare")
from mltrain.config.app import main
code = main(sys.argv[1:])
timings["total"] = time.perf_counter() - start
sys.stderr.write("BENCH " + json.dumps(timings) + "\\n")
sys.exit(code)
"""


def sklearn_node() -> dict:
    from mltrain.cli.envs import compose_environment

    return compose_environment("sklearn", [])


def cold_mltrain(work: Path, node: dict) -> tuple[float, dict]:
    """Lock and build the sklearn venv with empty caches; seconds and details."""
    from mltrain.environments.resolve import resolve
    from mltrain.environments.spec import EnvSpec
    from mltrain.environments.venv import VenvBuilder
    from mltrain.workspace import Workspace

    os.environ["MLTRAIN_CACHE_DIR"] = str(work / "mltrain-cache")
    os.environ["UV_CACHE_DIR"] = str(work / "uv-cache")
    ws = Workspace.open(str(work / "ws"))
    lines: list[str] = []
    start = time.perf_counter()
    spec = EnvSpec.from_config(node)
    env = resolve(spec, ws)
    locked = time.perf_counter()
    built = VenvBuilder().materialise(env, lines.append)
    took = time.perf_counter() - start
    assert not built.cached
    return took, {"lock_s": locked - start, "build_s": took - (locked - start), "packages": env.lock.count("==")}


def cold_pip(work: Path, requirements: list[str]) -> tuple[float, dict]:
    """``python -m venv`` + ``pip install --no-cache-dir`` of the same requirements; seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    venv = work / "pip-venv"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    made = time.perf_counter()
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-cache-dir", *requirements], check=True, env=env
    )
    took = time.perf_counter() - start
    return took, {"venv_s": made - start, "install_s": took - (made - start)}


def warm_resolution(work: Path, node: dict, repeats: int) -> list[float]:
    """EnvSpec.from_config + resolve + materialise on the warm cache of ``cold_mltrain``."""
    from mltrain.environments.resolve import resolve
    from mltrain.environments.spec import EnvSpec
    from mltrain.environments.venv import VenvBuilder
    from mltrain.workspace import Workspace

    ws = Workspace.open(str(work / "ws"))
    builder = VenvBuilder()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        env = resolve(EnvSpec.from_config(node), ws)
        built = builder.materialise(env, print)
        times.append(time.perf_counter() - start)
        assert built.cached
    return times


def system_run_resolution(runs: int) -> list[dict]:
    """Timings inside ``python -m mltrain environment=system`` on a no-op script (warm)."""
    work = Path(tempfile.mkdtemp(prefix="mltrain-bench-envres-"))
    (work / "src").mkdir()
    (work / "src" / "noop.py").write_text("pass\n")
    cmd = [sys.executable, "-c", TIMED_APP, *job_overrides("noop.py"), "experiment_name=bench"]
    env = {**os.environ, "MLTRAIN_WORKSPACE": str(work / "ws")}
    env.pop("MLTRAIN_CACHE_DIR", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: the warm-up run leaves the .pyc files
    out = []
    try:
        for i in range(runs + 1):  # the first run warms the workspace and the shim
            proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"python -m mltrain environment=system failed:\n{proc.stdout}\n{proc.stderr}")
            line = next(x for x in proc.stderr.splitlines() if x.startswith("BENCH "))
            if i:
                out.append(json.loads(line[len("BENCH ") :]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30, help="warm resolutions to time (default 30)")
    parser.add_argument("--runs", type=int, default=5, help="timed `python -m mltrain environment=system` runs")
    args = parser.parse_args()

    os.chdir(ROOT)
    node = sklearn_node()
    work = Path(tempfile.mkdtemp(prefix="mltrain-bench-env-"))
    saved = {k: os.environ.get(k) for k in ("MLTRAIN_CACHE_DIR", "UV_CACHE_DIR")}
    try:
        uv_s, uv_detail = cold_mltrain(work, node)
        from mltrain.environments.spec import EnvSpec

        pip_s, pip_detail = cold_pip(work, list(EnvSpec.from_config(node).requirements))
        warm = warm_resolution(work, node, args.repeats)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(work, ignore_errors=True)
    system = system_run_resolution(args.runs)

    ratio = pip_s / uv_s
    warm_median = median(warm)
    sys_env = median([t["resolve"] for t in system])
    sys_prep = median([t["prepare"] for t in system])
    sys_total = median([t["total"] for t in system])
    rows = [
        ("cold build, sklearn env: mltrain (uv lock + venv + sync)", f"{uv_s:.2f} s", ""),
        ("cold build, sklearn env: python -m venv + pip install", f"{pip_s:.2f} s", ""),
        ("  speed-up (pip / mltrain)", f"{ratio:.1f}x", "target >= 5x: " + ("met" if ratio >= 5 else "MISSED")),
        (
            f"warm resolution, sklearn env (median of {len(warm)})",
            f"{warm_median * 1000:.1f} ms",
            "target <= 100 ms: " + ("met" if warm_median <= 0.1 else "MISSED"),
        ),
        (
            f"python -m mltrain environment=system: resolve (median of {len(system)})",
            f"{sys_env * 1000:.1f} ms",
            "",
        ),
        ("python -m mltrain environment=system: prepare (materialise + record)", f"{sys_prep * 1000:.1f} ms", ""),
        ("python -m mltrain environment=system: whole command, in-process", f"{sys_total * 1000:.0f} ms", ""),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>10}  {note}")
    path = save(
        "env_bench",
        {
            "cold_build": {
                "mltrain_s": uv_s,
                "pip_s": pip_s,
                "ratio": ratio,
                "target_ratio": 5,
                "mltrain": uv_detail,
                "pip": pip_detail,
                "requirements": list(EnvSpec.from_config(node).requirements),
            },
            "warm_resolution": {"median_s": warm_median, "min_s": min(warm), "max_s": max(warm), "target_s": 0.1},
            "system_run": {
                "environment_median_s": sys_env,
                "prepare_median_s": sys_prep,
                "total_median_s": sys_total,
                "runs": system,
            },
            "pythondontwritebytecode": os.environ.get("PYTHONDONTWRITEBYTECODE"),
        },
    )
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
