"""A real two-node Ray cluster (head 127.0.0.2, worker 127.0.0.3, token authentication on) for the
whole test session, started once and stopped by SIGTERM to its ``ray start --block`` PIDs.

Ray's ports are fixed (tests/ray/raycluster.py): one test session at a time may run these tests.
Every process of the session gets the cluster's environment (token file, no usage stats, TMPDIR).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from raycluster import RayCluster, ray_bin


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.ray)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    if ray_bin() is None:
        pytest.skip("Ray is not installed (pip install 'mltrain[cluster]')")
    try:
        import ray.job_submission  # noqa: F401
    except ImportError:
        pytest.skip("Ray's job server needs ray[default] (pip install 'mltrain[cluster]')")
    running = os.environ.get("MLTRAIN_TEST_RAY_CLUSTER")  # the folder of a test cluster started earlier
    cluster = RayCluster.running(Path(running)) if running else RayCluster()
    saved = {k: os.environ.get(k) for k in cluster.env}
    if not running:
        cluster.start()
    os.environ.update(cluster.env)
    try:
        yield cluster
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if not running:
            cluster.stop()


@pytest.fixture
def cluster_env(ray_cluster: RayCluster) -> dict[str, str]:
    """The environment variables of a process that talks to the test cluster."""
    return dict(ray_cluster.env)


@pytest.fixture(autouse=True)
def no_ray_driver_left() -> Iterator[None]:
    """A test leaves this process connected to no Ray cluster: a driver connection left behind would
    end the whole test process once its cluster stops (Ray exits a driver that lost its GCS)."""
    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
        pytest.fail("the test left this process connected to a Ray cluster as a driver")
