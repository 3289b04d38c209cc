"""A 32-trial sweep: the iris SVC over 32 values of C, two at a time where the tool runs in parallel.

Cases, interleaved in the same run (median of ``--repeats``):
- ``python -m mltrain -m``: every trial an isolated, recorded child run of one sweep (its own process,
  folder, argv, logs, metrics), forked from pre-warmed interpreters, 2 at a time;
- the same with ``sweep.prewarm=false`` (a fresh interpreter per trial);
- hydra-joblib-launcher (n_jobs=2) running the same training as a Hydra task function;
- Hydra's basic launcher running that task function in process, one after another;
- one ``python train.py --C x`` process per trial, two at a time (``xargs -P 2``);
- with ``--project``: the prewarmed mltrain sweep of the same training laid out as a project's modules
  (``train.py`` does ``from task import train``; ``task.py`` imports scikit-learn), which warm starts
  reach by following the project's own imports (issue 26); ``--quick --project`` times only the
  two prewarmed mltrain sweeps and the hydra-joblib-launcher peer.
The peers run from a venv of their own (bench/.venvs/hydra-joblib) with the same scikit-learn.

    python bench/sweep.py [--repeats 3] [--trials 32] [--baseline PYTHON] [--quick] [--project]

``--baseline PYTHON`` also times ``PYTHON -m mltrain -m`` (e.g. the venv of a checkout of an earlier
commit) in the same interleaved run, so a change is compared with what came before it on the same
machine state; ``--quick`` times only the prewarmed mltrain sweep (and the baseline's).

Target (issue 12): mltrain <= 0.65x the hydra-joblib-launcher time and >= 4.5x faster than one
process per trial.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import baseline_command, interleaved, median, peer_venv, save  # noqa: E402

TRAIN = """
import argparse

from sklearn import datasets
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from mltrain import Run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--C", type=float, default=1.0)
    args = parser.parse_args()
    x, y = datasets.load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    accuracy = SVC(C=args.C).fit(x_train, y_train).score(x_test, y_test)
    Run.get_context().log("accuracy", accuracy)


if __name__ == "__main__":
    main()
"""

# the same training as a project's modules: the script imports scikit-learn only through task.py
PROJECT_TRAIN = """
from task import main

if __name__ == "__main__":
    main()
"""

TASK_APP = """
import hydra
from sklearn import datasets
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC


@hydra.main(version_base=None, config_path=None, config_name=None)
def main(cfg) -> float:
    x, y = datasets.load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    accuracy = SVC(C=cfg.C).fit(x_train, y_train).score(x_test, y_test)
    print(f"C={cfg.C} accuracy={accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
"""

JOB = """
name: bench-sweep
source_dir: src
script: train.py
arguments:
  C: 1.0
"""


def sweep_project(prefix: str) -> Path:
    """A fresh folder with the training script (src/train.py) and its job config (conf/job/bench.yaml);
    the same training as project modules in src_project/ (job ``bench_project``)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    (work / "src").mkdir()
    (work / "src" / "train.py").write_text(TRAIN)
    (work / "src_project").mkdir()
    (work / "src_project" / "train.py").write_text(PROJECT_TRAIN)
    (work / "src_project" / "task.py").write_text(TRAIN)
    (work / "conf" / "job").mkdir(parents=True)
    (work / "conf" / "job" / "bench.yaml").write_text(JOB)
    (work / "conf" / "job" / "bench_project.yaml").write_text(JOB.replace("source_dir: src", "source_dir: src_project"))
    return work


def c_values(trials: int) -> list[str]:
    """The values of C the sweep tries: ``trials`` of them, log-spaced from 0.01 to 100."""
    return [f"{10 ** (-2 + 4 * i / (trials - 1)):.6g}" for i in range(trials)]


def mltrain_sweep(values: list[str]) -> list[str]:
    """``python -m mltrain -m`` over ``values`` of C, the best by accuracy."""
    job = ["environment=system", "job=bench", "sweep.primary_metric.name=accuracy"]
    return [sys.executable, "-m", "mltrain", "-m", *job, f"job.arguments.C={','.join(values)}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--baseline", metavar="PYTHON", help="an interpreter with another mltrain to compare")
    parser.add_argument("--quick", action="store_true", help="only the prewarmed mltrain sweep (and the baseline's)")
    parser.add_argument("--project", action="store_true", help="also the sweep of the training as project modules")
    args = parser.parse_args()

    work = sweep_project("mltrain-bench-sweep-")
    (work / "task_app.py").write_text(TASK_APP)
    values = c_values(args.trials)
    sweep = ",".join(values)
    py = sys.executable
    mltrain = [*mltrain_sweep(values), "experiment_name=bench-sweep", "sweep.max_concurrent_runs=2"]
    cases = {"mltrain -m (prewarmed)": mltrain}
    if args.project:
        cases["mltrain -m, project modules"] = [a.replace("job=bench", "job=bench_project") for a in mltrain]
    if not args.quick:
        cases["mltrain -m, prewarm off"] = [*mltrain, "sweep.prewarm=false"]
    if args.baseline:
        cases["baseline mltrain -m (prewarmed)"] = baseline_command(args.baseline, mltrain[3:])
    if not args.quick or args.project:
        sklearn = importlib.metadata.version("scikit-learn")
        hydra = importlib.metadata.version("hydra-core")
        requirements = [f"hydra-core=={hydra}", "hydra-joblib-launcher", f"scikit-learn=={sklearn}", "joblib"]
        peer = str(peer_venv("hydra-joblib", requirements))
        hydra_common = [f"+C={sweep}", "hydra.sweep.dir=multirun/${now:%H-%M-%S-%f}"]
        cases["hydra-joblib-launcher"] = [
            peer,
            "task_app.py",
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            *hydra_common,
        ]
    if not args.quick:
        cases["hydra basic launcher"] = [peer, "task_app.py", "-m", *hydra_common]
        cases["process per trial"] = [
            "sh",
            "-c",
            f"printf '%s\\n' {' '.join(values)} | xargs -P 2 -I{{}} {py} src/train.py --C {{}}",
        ]
    warm = {name: cmd for name, cmd in cases.items() if "prewarmed" in name or "project modules" in name}
    interleaved(warm, 1, work)  # warm-up: workspaces, caches, .pyc files
    times = interleaved(cases, args.repeats, work)
    med = {name: median(v) for name, v in times.items()}
    ours = med["mltrain -m (prewarmed)"]
    print(f"{args.trials} trials, 2 at a time; median of {args.repeats}")
    print(f"{'case':<32} {'median s':>9} {'min s':>7}")
    for name, vals in times.items():
        print(f"{name:<32} {med[name]:>9.2f} {min(vals):>7.2f}")
    results: dict[str, object] = {"trials": args.trials, "repeats": args.repeats, "median_s": med, "all_s": times}
    if args.baseline:
        vs_baseline = ours / med["baseline mltrain -m (prewarmed)"]
        print(f"\nmltrain / baseline mltrain: {vs_baseline:.2f}x (no slowdown: <= 1)")
        results["mltrain_over_baseline"] = vs_baseline
    if args.project:
        vs_joblib = med["mltrain -m, project modules"] / med["hydra-joblib-launcher"]
        print(f"\nmltrain (project modules) / hydra-joblib-launcher: {vs_joblib:.2f}x")
        results["project_modules_over_joblib"] = vs_joblib
    if not args.quick:
        vs_joblib = ours / med["hydra-joblib-launcher"]
        vs_process = med["process per trial"] / ours
        print(f"\nmltrain / hydra-joblib-launcher: {vs_joblib:.2f}x (target <= 0.65)")
        print(f"process per trial / mltrain: {vs_process:.2f}x faster (target >= 4.5)")
        print(f"mltrain / hydra basic launcher: {ours / med['hydra basic launcher']:.2f}x")
        results.update(mltrain_over_joblib=vs_joblib, process_per_trial_over_mltrain=vs_process)
    path = save("sweep", results)
    print(f"results: {path}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
