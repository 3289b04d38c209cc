"""Per-run overhead on a Ray cluster: `python -m mltrain +compute=cluster` vs local, and vs Ray alone.

Starts the test suite's two-node Ray cluster on loopback (head 127.0.0.2, worker 127.0.0.3, token
authentication on; tests/ray/raycluster.py; stopped at the end) unless MLTRAIN_TEST_RAY_CLUSTER names
one that runs. Cases, interleaved, on a script that does nothing (the cluster's own Python, nothing
to install):

- ``local``: ``python -m mltrain`` on local compute;
- ``cluster``: the same run with ``+compute=cluster`` (submit, stream, outputs back, job deleted);
- ``ray job (bare)``: the peer: Ray's own client submitting the same script as a job with the same
  working_dir and resources, following its log to the end (what any Ray-based run pays).

Usage: python bench/ray_bench.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests" / "ray"))
from common import interleaved, median, save  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    running = os.environ.get("MLTRAIN_TEST_RAY_CLUSTER")
    cluster = RayCluster.running(Path(running)) if running else RayCluster().start()
    try:
        work = Path(tempfile.mkdtemp(prefix="mltrain-bench-ray-"))
        (work / "src").mkdir()
        (work / "src" / "noop.py").write_text("pass\n")
        (work / "bare_job.py").write_text(BARE_JOB)
        py = sys.executable
        url = cluster.dashboard_url
        run = [py, "-m", "mltrain", "environment=system", "~register", "job.source_dir=src", "job.script=noop.py"]
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
