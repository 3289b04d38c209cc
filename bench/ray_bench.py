"""Per-run overhead on a Ray cluster: `python -m mltrain +compute=cluster` vs local, and vs Ray alone.

Starts the test suite's two-node Ray cluster on loopback (head 127.0.0.2, worker 127.0.0.3, token
authentication on; tests/ray/raycluster.py; stopped at the end) unless MLTRAIN_TEST_RAY_CLUSTER names
one that runs. Cases, interleaved, on a script that does nothing (the cluster's own Python, nothing
to install):

- ``local``: ``python -m mltrain`` on local compute;
- ``cluster``: the same run with ``+compute=cluster`` (submit, stream, outputs back, job deleted);
- ``ray job (bare)``: the peer: Ray's own client submitting the same script as a job with the same
  working_dir and resources, following its log to the end (what any Ray-based run pays).

With ``--sweep``: the 32-trial iris sweep of bench/sweep.py (the SVC over 32 values of C) instead,
as many trials at a time as the cluster holds (2: one CPU per node), interleaved:

- ``mltrain -m local``: the sweep on local compute, 2 at a time (prewarmed interpreters);
- ``mltrain -m cluster``: the same sweep with ``+compute=cluster``: every trial an isolated, recorded
  child run (own process, folder, logs, metrics, outputs back), forked on its node by a warm actor
  (one per concurrent trial, with the run's resources; booted, with no runtime_env, for this
  ``system`` environment; ``sweep.prewarm``);
- with ``--jobs`` also ``mltrain -m cluster, a job each``: the same with ``sweep.prewarm=false``, every
  trial a Ray job of its own;
- ``ray tune``: Ray Tune on the same cluster running the same training as a function trainable
  (grid over the same 32 values, one CPU per trial), a fresh actor per trial;
- ``ray tune reuse_actors``: the same with ``reuse_actors=True``.

Before each case (untimed) the bench waits until the cluster runs no actor, 3 s more, and until
this machine's CPUs are less than 25% busy, so no case pays for the clean-up of the one before
(killing 32 Tune actors takes seconds).

Ray Tune needs ``ray[tune]`` of the cluster's Ray version in this venv; it is installed on first use.

Usage: python bench/ray_bench.py [--repeats 5]
       python bench/ray_bench.py --sweep [--repeats 2] [--trials 32] [--jobs]
       python bench/ray_bench.py --actor-start [--repeats 5]

With ``--actor-start``: how long Ray itself takes to start two 1-CPU actors on the cluster, with no
runtime_env (as Ray Tune's and mltrain's booted warm actors) and with one (as mltrain's warm actors
of an environment with packages).
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
import urllib.request
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests" / "ray"))
from common import interleaved, job_overrides, median, save  # noqa: E402
from raycluster import RayCluster  # noqa: E402

BARE_JOB = """
import asyncio, os, sys, uuid
from ray.job_submission import JobSubmissionClient
url, src = sys.argv[1:3]
token = open(os.environ["RAY_AUTH_TOKEN_PATH"]).read().strip()
client = JobSubmissionClient(url, headers={"Authorization": f"Bearer {token}"})
sid = client.submit_job(entrypoint="python noop.py", runtime_env={"working_dir": src},
                        entrypoint_num_cpus=1, submission_id=f"bench-{uuid.uuid4().hex[:12]}")
async def follow():
    async for _ in client.tail_job_logs(sid):
        pass
asyncio.run(follow())
assert client.get_job_status(sid).value == "SUCCEEDED"
client.delete_job(sid)
"""


TUNE_DRIVER = """
import sys, tempfile, time
import ray
from ray import tune

gcs, reuse, values = sys.argv[1], sys.argv[2] == "reuse", [float(v) for v in sys.argv[3].split(",")]


def train(config):
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.svm import SVC

    x, y = datasets.load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    tune.report({"accuracy": SVC(C=config["C"]).fit(x_train, y_train).score(x_test, y_test)})


ray.init(address=gcs, logging_level="ERROR", log_to_driver=False)
tuner = tune.Tuner(
    tune.with_resources(train, {"cpu": 1}),
    param_space={"C": tune.grid_search(values)},
    tune_config=tune.TuneConfig(metric="accuracy", mode="max", reuse_actors=reuse),
    run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="tune-"), verbose=0),
)
results = tuner.fit()
assert len(results) == len(values) and not results.errors, results.errors
print("best", results.get_best_result().config)
"""


def busy_fraction(seconds: float = 1.0) -> float:
    """How busy this machine's CPUs were over the next ``seconds`` (0..1, from /proc/stat)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(1, total1 - total0)


def settled(
    cluster: RayCluster, quiet_s: float = 3.0, timeout: float = 120.0, idle_below: float = 0.25
) -> Callable[[], None]:
    """Before each case: wait until the cluster runs no actor (the last case's are dead, its CPUs free),
    then ``quiet_s`` more and until the machine's CPUs are less than ``idle_below`` busy (at most
    ``timeout``), so no case pays for the clean-up of the one before."""

    def wait() -> None:
        token = cluster.token_file.read_text().strip()
        url = f"{cluster.dashboard_url}/api/v0/actors?limit=10000&detail=false"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - the local test cluster
                actors = json.loads(resp.read())["data"]["result"]["result"]
            if not [a for a in actors if a.get("state") != "DEAD"]:
                break
            time.sleep(0.5)
        time.sleep(quiet_s)
        while time.monotonic() < deadline and busy_fraction() >= idle_below:
            pass

    return wait


ACTOR_START = """
import sys, time
import ray

gcs, repeats = sys.argv[1], int(sys.argv[2])
ray.init(address=gcs, logging_level="ERROR", log_to_driver=False)


@ray.remote(num_cpus=1)
class Probe:
    def __init__(self):
        self.at = time.time()

    def started(self):
        return self.at


def two(runtime_env):
    t = time.time()
    actors = [Probe.options(runtime_env=runtime_env).remote() if runtime_env else Probe.remote() for _ in range(2)]
    took = max(ray.get([a.started.remote() for a in actors])) - t
    for a in actors:
        ray.kill(a)
    time.sleep(3)
    return took


bare, with_env = [], []
for _ in range(repeats):
    bare.append(two(None))
    with_env.append(two({"env_vars": {"MLTRAIN_BENCH": str(time.time())}}))
print("two actors, no runtime_env:   " + " ".join(f"{x:.2f}" for x in bare) + " s")
print("two actors, with runtime_env: " + " ".join(f"{x:.2f}" for x in with_env) + " s")
"""


def ensure_tune() -> None:
    """ray[tune] of this Ray's version in this venv (the driver and the cluster's workers run it)."""
    try:
        import ray.tune  # noqa: F401
    except ImportError:
        import ray

        from mltrain.environments.cache import uv_bin

        print(f"installing ray[tune]=={ray.__version__} into this venv (the peer of --sweep)", flush=True)
        subprocess.run(
            [uv_bin(), "pip", "install", "-q", "--python", sys.executable, f"ray[tune]=={ray.__version__}"], check=True
        )


def sweep_main(args: argparse.Namespace, cluster: RayCluster) -> None:
    """The --sweep comparison (see the module docstring)."""
    from sweep import c_values, mltrain_sweep, sweep_project

    ensure_tune()
    work = sweep_project("mltrain-bench-raysweep-")
    (work / "tune_driver.py").write_text(TUNE_DRIVER)
    values = c_values(args.trials)
    py = sys.executable
    mltrain = mltrain_sweep(values)
    on_cluster = [
        *mltrain,
        "experiment_name=bench-cluster",
        "+compute=cluster",
        f"compute.address={cluster.dashboard_url}",
    ]
    cases = {
        "mltrain -m local": [*mltrain, "experiment_name=bench-local", "sweep.max_concurrent_runs=2"],
        "mltrain -m cluster": on_cluster,
        **({"mltrain -m cluster, a job each": [*on_cluster, "sweep.prewarm=false"]} if args.jobs else {}),
        "ray tune": [py, "tune_driver.py", cluster.gcs_address, "fresh", ",".join(values)],
        "ray tune reuse_actors": [py, "tune_driver.py", cluster.gcs_address, "reuse", ",".join(values)],
    }
    env = cluster.env
    settle = settled(cluster)
    interleaved(cases, 1, work, env, settle)  # warm-up: workers, caches, .pyc files
    times = interleaved(cases, args.repeats, work, env, settle)
    med = {name: median(v) for name, v in times.items()}
    ours = med["mltrain -m cluster"]
    print(f"{args.trials} trials, 2 at a time (one CPU on each of 2 nodes); median of {args.repeats}")
    print(f"{'case':<32} {'median s':>9} {'min s':>7} {'s/trial':>8}")
    for name, vals in times.items():
        print(f"{name:<32} {med[name]:>9.2f} {min(vals):>7.2f} {med[name] / args.trials:>8.3f}")
    ratios = {
        "cluster_over_local": ours / med["mltrain -m local"],
        "cluster_over_tune": ours / med["ray tune"],
        "cluster_over_tune_reuse_actors": ours / med["ray tune reuse_actors"],
    }
    print(f"\nmltrain cluster / mltrain local:          {ratios['cluster_over_local']:.2f}x")
    print(f"mltrain cluster / ray tune:               {ratios['cluster_over_tune']:.2f}x")
    print(f"mltrain cluster / ray tune reuse_actors:  {ratios['cluster_over_tune_reuse_actors']:.2f}x (target < 1)")
    path = save(
        "ray_sweep_bench",
        {"trials": args.trials, "repeats": args.repeats, "median_s": med, "all_s": times, **ratios},
    )
    print(f"results: {path}")
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=None, help="default: 5 (per run), 2 (--sweep)")
    parser.add_argument("--sweep", action="store_true", help="the 32-trial sweep vs local and Ray Tune")
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--jobs", action="store_true", help="--sweep: also the sweep with a Ray job per trial")
    parser.add_argument(
        "--actor-start", action="store_true", help="start two actors with and without a runtime_env (Ray's own cost)"
    )
    args = parser.parse_args()
    args.repeats = args.repeats or (2 if args.sweep else 5)

    running = os.environ.get("MLTRAIN_TEST_RAY_CLUSTER")
    cluster = RayCluster.running(Path(running)) if running else RayCluster().start()
    if args.sweep or args.actor_start:
        try:
            if args.sweep:
                sweep_main(args, cluster)
            else:  # how long Ray takes to start two 1-CPU actors, with and without a runtime_env
                subprocess.run(
                    [sys.executable, "-c", ACTOR_START, cluster.gcs_address, str(args.repeats)],
                    env={**os.environ, **cluster.env},
                    check=True,
                )
        finally:
            if not running:
                cluster.stop()
        return
    try:
        work = Path(tempfile.mkdtemp(prefix="mltrain-bench-ray-"))
        (work / "src").mkdir()
        (work / "src" / "noop.py").write_text("pass\n")
        (work / "bare_job.py").write_text(BARE_JOB)
        py = sys.executable
        url = cluster.dashboard_url
        run = [py, "-m", "mltrain", *job_overrides("noop.py")]
        cases = {
            "local": [*run, "experiment_name=bench-local"],
            "cluster": [*run, "experiment_name=bench-cluster", "+compute=cluster", f"compute.address={url}"],
            "ray job (bare)": [py, "bare_job.py", url, str(work / "src")],
        }
        env = cluster.env
        interleaved(cases, 1, work, env)  # warm-up: packages uploaded, workers and caches hot
        times = interleaved(cases, args.repeats, work, env)
    finally:
        if not running:
            cluster.stop()
    med = {name: median(v) for name, v in times.items()}
    print(f"{'case':<16} {'median s':>9} {'min s':>7}")
    for name, values in times.items():
        print(f"{name:<16} {med[name]:>9.2f} {min(values):>7.2f}")
    print(f"\ncluster / local:          {med['cluster'] / med['local']:.2f}x")
    print(f"cluster / ray job (bare): {med['cluster'] / med['ray job (bare)']:.2f}x")
    print(f"mltrain's own cost on the cluster: {med['cluster'] - med['ray job (bare)']:+.2f} s per run")
    path = save(
        "ray_bench",
        {
            "repeats": args.repeats,
            "median_s": med,
            "cluster_over_local": med["cluster"] / med["local"],
            "cluster_over_bare_ray_job": med["cluster"] / med["ray job (bare)"],
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
