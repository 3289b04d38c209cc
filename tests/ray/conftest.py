"""A real two-node Ray cluster (head 127.0.0.2, worker 127.0.0.3, token authentication on) for the
test session, started by the first test that needs it and stopped, by SIGTERM to its ``ray start
--block`` PIDs, after the last one (the tests that need it run one after another: on one xdist worker,
tests/conftest.py), so an idle cluster does not slow the rest of the session.

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))  # the S3 server helper of tests/data
from moto_s3 import MotoS3, running_moto  # noqa: E402


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


LAST_USER = pytest.StashKey[str]()  # the node id of the last test, in run order, that uses ray_cluster


def pytest_collection_finish(session: pytest.Session) -> None:
    users = [item.nodeid for item in session.items if "ray_cluster" in getattr(item, "fixturenames", ())]
    if users:
        session.config.stash[LAST_USER] = users[-1]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After the last test that uses ``ray_cluster`` (xdist runs them in this order, on one worker), stop
    the cluster: its fixture is finished (a test that needed it later would start it again)."""
    result = yield
    if item.nodeid == item.config.stash.get(LAST_USER, None):
        fixturedef = item._fixtureinfo.name2fixturedefs["ray_cluster"][-1]  # type: ignore[attr-defined]
        fixturedef.finish(item._request)  # type: ignore[attr-defined]
    return result


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


@pytest.fixture(scope="module")
def open_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """moto's S3 server on loopback, stopped by its PID. It answers a presigned URL with a 500 while it
    enforces signing, so this one does not (as tests/data/test_node_fetch.py's)."""
    with running_moto(tmp_path_factory.mktemp("moto-open"), enforce_auth=False) as server:
        yield server
