"""Shared helpers of the benchmarks: timing commands, peer venvs, writing results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
VENVS = BENCH_DIR / ".venvs"


BARE_HYDRA = """
import hydra

@hydra.main(version_base=None, config_path=None)
def main(cfg):
    pass

main()
"""
BARE_HYDRA_ARGS = [
    "hydra.run.dir=.",
    "hydra.output_subdir=null",
    "hydra/job_logging=disabled",
    "hydra/hydra_logging=disabled",
]


def wall(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    """Seconds one run of ``cmd`` takes (it must succeed)."""
    full_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as users run it
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env={**full_env, **(env or {})}, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return took


def job_overrides(script: str, environment: str = "system") -> list[str]:
    """Overrides of the benches' usual run: ``src/SCRIPT`` in ``environment``, nothing registered."""
    return [f"environment={environment}", "~register", "job.source_dir=src", f"job.script={script}"]


def machine_busy_s() -> float:
    """CPU seconds this machine has spent busy since boot, all processes and cores (Linux ``/proc/stat``)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def interleaved(
    cases: dict[str, list[str]],
    repeats: int,
    cwd: Path,
    env: dict[str, str] | None = None,
    settle: Callable[[], None] | None = None,
    cpu: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Time every case ``repeats`` times, interleaved so machine noise hits all alike; ``settle`` runs
    (untimed) before each case, so no case pays for the clean-up of the one before. ``cpu``: filled with
    the CPU seconds the whole machine spent during each run (every process a case starts, servers too)."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, cmd in cases.items():
            if settle is not None:
                settle()
            busy = machine_busy_s()
            times[name].append(wall(cmd, cwd, env))
            if cpu is not None:
                cpu.setdefault(name, []).append(machine_busy_s() - busy)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def peer_venv(name: str, requirements: list[str]) -> Path:
    """A venv under bench/.venvs/NAME with ``requirements`` (made with uv on first use); its python."""
    from mltrain.environments.cache import uv_bin

    venv = VENVS / name
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([uv_bin(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
        subprocess.run([uv_bin(), "pip", "install", "-q", "--python", str(python), *requirements], check=True)
    return python


def save(name: str, data: dict[str, Any]) -> Path:
    """Write ``data`` (plus machine facts) to bench/results/NAME.json."""
    RESULTS.mkdir(exist_ok=True)
    data = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()},
        **data,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def packages(python: str) -> dict[str, str]:
    """Installed distributions of ``python`` (name -> version), mltrain itself left out."""
    code = (
        "import importlib.metadata as m, json\n"
        "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions() if d.metadata['Name']}))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    found: dict[str, str] = json.loads(out)
    found.pop("mltrain", None)
    return found


def check_same_packages(baseline: str) -> None:
    ours, theirs = packages(sys.executable), packages(baseline)
    differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    if differ:
        print(
            f"warning: the baseline venv differs in {len(differ)} packages ({', '.join(differ[:8])}"
            f"{', ...' if len(differ) > 8 else ''}); the comparison is not of mltrain alone. Align it with:\n"
            f"  {sys.executable} -m pip freeze --exclude-editable > /tmp/req.txt && "
            f"{baseline} -m pip install -r /tmp/req.txt\n",
            flush=True,
        )


def baseline_command(python: str, args: list[str]) -> list[str]:
    """``PYTHON -m mltrain ARGS`` of another mltrain (``--baseline``), in a workspace of its own (the
    two versions may differ in schema); says first which packages its venv has otherwise."""
    check_same_packages(python)
    return ["env", "MLTRAIN_WORKSPACE=.mltrain-baseline", python, "-m", "mltrain", *args]
