"""Runs forked by warm Ray actors (a sweep's children on the cluster target) pass the same
compute-target conformance suite as runs that are Ray jobs of their own, against the session's
two-node cluster (token authentication on). Both kinds of warm actor pass it: booted ones (no
runtime_env needed: they start on Ray's ordinary workers and unpack the API and snapshot they are
sent) and ones with the run's runtime_env (here forced by a runtime_env ``config`` field)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conformance import ComputeTargetSuite
from raycluster import ON_THE_WORKER_NODE

import mltrain
from mltrain.compute.base import ComputeTarget, JobRef, NullSink, OutputSink, RunHandle, RunSpec
from mltrain.compute.ray import ClusterCompute
from mltrain.compute.ray.driver import call
from mltrain.compute.ray.warm_trial import WarmHandle
from mltrain.environments.base import Materialised


class PrewarmedCluster(ClusterCompute):
    """Cluster compute whose runs are forked by warm actors (prewarmed at the first start)."""

    def start(self, spec: RunSpec, env: Materialised, sink: OutputSink) -> RunHandle:
        if self._warm is None:
            self.prewarm(env, spec, ["json", "signal"], 2)
        return super().start(spec, env, sink)


RUNTIME_ENVS = {
    "booted": {"env_vars": {"FROM_RUNTIME_ENV": "booted"}},
    "runtime_env": {"env_vars": {"FROM_RUNTIME_ENV": "runtime_env"}, "config": {"setup_timeout_seconds": 600}},
}


class TestWarmClusterCompute(ComputeTargetSuite):
    one_node_options = ON_THE_WORKER_NODE  # two nodes: two runs may land on different ones

    @pytest.fixture(params=list(RUNTIME_ENVS))
    def make_target(self, ray_cluster, request: pytest.FixtureRequest) -> Callable[..., ComputeTarget]:
        return lambda **options: PrewarmedCluster(
            address=ray_cluster.dashboard_url,
            token_file=str(ray_cluster.token_file),
            cancel_grace_s=2.0,
            runtime_env=RUNTIME_ENVS[request.param],
            **options,
        )

    @pytest.fixture
    def environment_config(self) -> dict:
        return {"name": "cluster-python", "build": "system"}

    def assert_cleaned(self, target: ComputeTarget, spec: RunSpec, ref: JobRef) -> None:
        assert isinstance(target, ClusterCompute)
        assert target.attach(ref, spec, NullSink()) is None  # the actor no longer holds the run

    def test_runs_are_forked_by_warm_actors_not_ray_jobs(self, start: Callable[..., object]) -> None:
        job = start("import os\nprint('pid', os.getpid(), 'group', os.getpgid(0))\n")
        handle = job.handle  # type: ignore[attr-defined]
        assert isinstance(handle, WarmHandle), job.sink.lines  # type: ignore[attr-defined]
        assert handle.wait(120) == 0
        pid, group = job.sink.text().split()[1::2]  # type: ignore[attr-defined]
        assert pid == group  # a process group of its own
        assert handle.ref["actor"].startswith("mltrain-warm-") and handle.ref["pgid"] == int(pid)
        target: ClusterCompute = job.target  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match="does not exist"):
            target.client.get_job_info(f"mltrain-{job.spec.run_id}-1")  # type: ignore[attr-defined]

    def test_each_run_gets_a_fresh_folder_and_process(self, start: Callable[..., object]) -> None:
        script = (
            "import os\nprint(os.getcwd(), os.getpid(), os.environ['MLTRAIN_RUN_DIR'] == os.getcwd())\n"
            "print('mine.txt' in os.listdir('.'))\nopen('mine.txt', 'w').write('x')\n"
        )
        seen = []
        for _ in range(3):  # sequential, on two warm actors
            job = start(script)
            assert job.handle.wait(120) == 0  # type: ignore[attr-defined]
            where, pid, is_run_dir, leftover = job.sink.text().split()  # type: ignore[attr-defined]
            assert is_run_dir == "True" and leftover == "False"  # a fresh copy of the working_dir
            seen.append((where, pid, job.handle.ref["actor"]))  # type: ignore[attr-defined]
        assert len({w for w, _, _ in seen}) == 3 and len({p for _, p, _ in seen}) == 3
        assert len({a for _, _, a in seen}) < 3  # an actor ran two of them: each still in a fresh folder and process

    def test_booted_actors_bring_their_own_code_others_get_a_runtime_env(self, start: Callable[..., object]) -> None:
        job = start(
            "import os, mltrain\nprint(os.environ['FROM_RUNTIME_ENV'], mltrain.__file__, os.environ['MLTRAIN_RUN_ID'])"
        )
        handle = job.handle  # type: ignore[attr-defined]
        assert isinstance(handle, WarmHandle) and handle.wait(120) == 0, job.sink.lines  # type: ignore[attr-defined]
        kind, api, run_id = job.sink.text().split()  # type: ignore[attr-defined]
        assert run_id == job.spec.run_id  # type: ignore[attr-defined]
        code = call(handle.actor.ready)["code"]
        assert not api.startswith(str(Path(mltrain.__file__).parent))  # the run's API is the copy shipped with it
        if kind == "booted":  # on an ordinary worker: API and snapshot unpacked in the actor's own folder
            home = code.split("/api/mltrain/")[0]
            assert code == f"{home}/api/mltrain/remote/ray_warm.py" and api == f"{home}/api/mltrain/__init__.py"
        else:  # an actor with the runtime_env; its children get the API from the runtime_env's py_modules
            assert kind == "runtime_env" and "/api/mltrain/" not in code and "/runtime_resources/" in api
