"""Overhead of a local run: `python -m mltrain` on a script that does nothing, minus `python script.py`.

Peers in the same run, interleaved: the plain script and a bare Hydra app (the floor any Hydra CLI
pays). The environment is cached (one warm-up run first). Usage:

    python bench/run_overhead.py [--repeats 15] [--env system|sklearn] [--baseline PYTHON]

``--baseline PYTHON`` also times ``PYTHON -m mltrain`` (e.g. the venv of a checkout of an earlier
commit) in the same run, so a change is compared with what came before it on the same machine state.
The two venvs must hold the same third-party packages (omegaconf, for one, imports ``attrs`` when it
is installed); the script says which differ and how to align them.

Target (issue 2): overhead <= 0.5 s, measured where a bare Hydra app takes 0.37 s; on a slower or
busier machine compare the ratio overhead / (bare Hydra - plain script), whose budget is 0.5/0.37 = 1.35.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BARE_HYDRA, BARE_HYDRA_ARGS, baseline_command, interleaved, job_overrides, median, save  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--env", default="system", choices=["system", "sklearn"], help="environment of the job")
    parser.add_argument("--baseline", metavar="PYTHON", help="an interpreter with another mltrain to compare")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mltrain-bench-overhead-"))
    (work / "src").mkdir()
    (work / "src" / "noop.py").write_text("pass\n")
    (work / "hydra_app.py").write_text(BARE_HYDRA)
    py = sys.executable
    overrides = [*job_overrides("noop.py", args.env), "experiment_name=bench"]
    mltrain = [py, "-m", "mltrain", *overrides]
    cases = {
        "python noop.py": [py, "src/noop.py"],
        "bare hydra app": [py, "hydra_app.py", *BARE_HYDRA_ARGS],
        "python -m mltrain": mltrain,
        "same, no prefork": ["env", "MLTRAIN_NO_PREFORK=1", *mltrain],
    }
    if args.baseline:
        cases["baseline mltrain"] = baseline_command(args.baseline, overrides)
    interleaved(cases, 1, work)  # warm-up: environment built, caches and .pyc files hot
    cpu: dict[str, list[float]] = {}
    times = interleaved(cases, args.repeats, work, cpu=cpu)
    med = {name: median(v) for name, v in times.items()}
    overhead = med["python -m mltrain"] - med["python noop.py"]
    hydra_overhead = med["bare hydra app"] - med["python noop.py"]
    ratio = overhead / hydra_overhead
    print(f"{'case':<20} {'median s':>9} {'min s':>7} {'CPU s':>6}  (CPU: the whole machine's, median)")
    for name, values in times.items():
        print(f"{name:<20} {med[name]:>9.3f} {min(values):>7.3f} {median(cpu[name]):>6.2f}")
    print(f"\nmltrain overhead over the plain script: {overhead:.3f} s (target <= 0.5 s where bare Hydra is 0.37 s)")
    print(f"bare Hydra overhead over the plain script: {hydra_overhead:.3f} s")
    print(f"ratio mltrain / bare Hydra overhead: {ratio:.2f} (budget 0.5 / 0.37 = 1.35)")
    print(f"same-machine equivalent of the 0.5 s budget: {1.35 * hydra_overhead:.3f} s")
    if args.baseline:
        base_overhead = med["baseline mltrain"] - med["python noop.py"]
        print(f"baseline overhead: {base_overhead:.3f} s; this mltrain / baseline: {overhead / base_overhead:.2f}")
    path = save(
        f"run_overhead_{args.env}",
        {
            "repeats": args.repeats,
            "median_s": med,
            "median_machine_cpu_s": {name: median(v) for name, v in cpu.items()},
            "overhead_s": overhead,
            "hydra_overhead_s": hydra_overhead,
            "ratio_to_hydra": ratio,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
