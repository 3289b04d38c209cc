"""The conformance suite of deploy targets (as tests/conformance.py is for compute targets, and Hydra's
``LauncherTestSuite`` for launchers).

It deploys a registered iris model in process with :func:`mltrain.deploy.service.deploy` and the
target, and checks what a user relies on over real HTTP on loopback: scoring with a key (401 without),
the target's probe, logs and stop, a re-deploy that replaces the server and keeps keys and URI, a
server that fails to start, resources (workers from cpu) and auth off.

To stay fast a class shares one workspace, one registered model and one deployed endpoint (class-scoped
fixtures); a test that changes an endpoint deploys its own. A subclass
(``class TestMyTarget(DeployTargetSuite)``) provides one fixture, class-scoped:

- ``make_target``: ``make_target(**options)`` returns a new target with those deploy options
  (``name``, ``cpu``, ``memory_gb``, ``auth``, ...) and the test's engine, base image, ...;

and overrides ``assert_resources`` to check how the target applies cpu and memory to a running server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import port_free, score

from mltrain.deploy.base import CONFIG_FILE, KEYS_FILE, DeployTarget
from mltrain.deploy.service import delete_endpoint, deploy, endpoint_status, regenerate_key
from mltrain.deploy.targets import target_for_record
from mltrain.errors import DeployError
from mltrain.registry.from_file import register_file
from mltrain.workspace import Workspace, WorkspaceSettings
from mltrain.workspace.endpoints import FAILED, RUNNING, EndpointStore
from mltrain.workspace.models import ModelVersion


@dataclass
class Iris:
    """A registered iris classifier and its own predictions on the iris rows."""

    mv: ModelVersion
    path: Path  # the model file
    rows: list[list[float]]
    predictions: list[int]


@dataclass
class Deployed:
    """An endpoint deployed by the suite: what ``deploy`` returned and the target object that did it."""

    info: dict[str, Any]
    target: DeployTarget
    record: dict[str, Any]  # the endpoint's record right after the deploy

    @property
    def uri(self) -> str:
        return str(self.info["uri"])

    @property
    def port(self) -> int:
        return int(self.uri.rsplit(":", 1)[1])


@dataclass
class Deployer:
    """``deployer(mv, name=..., **options)``: deploy with a new target; ``close()`` stops and deletes it all."""

    ws: Workspace
    make_target: Callable[..., DeployTarget]
    names: list[str] = field(default_factory=list)
    done: list[Deployed] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def __call__(self, mv: ModelVersion, **options: Any) -> Deployed:
        target = self.make_target(**options)
        self.names.append(options["name"])  # a failed deploy leaves a record to delete too
        info = deploy(self.ws, mv, target, log=self.log.append)
        self.done.append(Deployed(info, target, record_of(self.ws, info["name"])))
        return self.done[-1]

    def close(self) -> None:
        for d in self.done:
            d.target.stop(d.record)  # the target object that started a server also reaps it
        for name in dict.fromkeys(self.names):
            if EndpointStore(self.ws).find(name) is not None:
                delete_endpoint(self.ws, name, force=True)


def record_of(ws: Workspace, name: str) -> dict[str, Any]:
    return EndpointStore(ws).get(name)


class DeployTargetSuite:
    """Subclass it and provide a class-scoped ``make_target`` fixture."""

    def assert_resources(self, record: dict[str, Any]) -> None:
        """How the target applies ``cpu`` (workers) and ``memory_gb`` to the running server of ``record``."""

    # -- fixtures --------------------------------------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def ws(cls, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
        return Workspace(WorkspaceSettings.resolve(str(tmp_path_factory.mktemp("deploy-ws"))))

    @pytest.fixture(scope="class")
    @classmethod
    def iris(cls, ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iris:
        """``iris:1``, an SVC trained here and registered from its file (cpu 1, no memory limit)."""
        import joblib
        from sklearn.datasets import load_iris
        from sklearn.svm import SVC

        x, y = load_iris(return_X_y=True)
        model = SVC().fit(x, y)
        path = tmp_path_factory.mktemp("iris-model") / "model.joblib"
        joblib.dump(model, path)
        mv = register_file(ws, "iris", path, cpu=1.0)
        return Iris(mv, path, x.tolist(), model.predict(x).tolist())

    @pytest.fixture(scope="class")
    @classmethod
    def endpoint(cls, ws: Workspace, iris: Iris, make_target: Callable[..., DeployTarget]) -> Iterator[Deployed]:
        """The class's shared endpoint ``iris-main``: iris:1 with the target's defaults (auth on)."""
        deployer = Deployer(ws, make_target)
        try:
            yield deployer(iris.mv, name="iris-main")
        finally:
            deployer.close()

    @pytest.fixture(scope="class")
    @classmethod
    def open_endpoint(cls, ws: Workspace, iris: Iris, make_target: Callable[..., DeployTarget]) -> Iterator[Deployed]:
        """Endpoint ``iris-open``: iris:1 with auth off, cpu 2 and memory_gb 1."""
        deployer = Deployer(ws, make_target)
        try:
            yield deployer(iris.mv, name="iris-open", auth=False, cpu=2.0, memory_gb=1.0)
        finally:
            deployer.close()

    @pytest.fixture
    def deployer(self, ws: Workspace, make_target: Callable[..., DeployTarget]) -> Iterator[Deployer]:
        """Deploys of one test, stopped and deleted when it ends."""
        deployer = Deployer(ws, make_target)
        yield deployer
        deployer.close()

    # -- the contract ----------------------------------------------------------------------------
    def test_scores_the_models_predictions_with_a_key_and_401_without(self, endpoint: Deployed, iris: Iris) -> None:
        keys = endpoint.info["keys"]
        assert set(keys) == {"primary", "secondary"}
        resp = score(endpoint.uri, {"data": iris.rows}, key=keys["primary"])
        assert resp.status == 200, resp.body
        assert resp.json()["predictions"] == iris.predictions
        assert (
            score(endpoint.uri, {"data": iris.rows[:5]}, key=keys["secondary"]).json()["predictions"]
            == (iris.predictions[:5])
        )
        assert score(endpoint.uri, {"data": iris.rows[:1]}).status == 401
        assert score(endpoint.uri, {"data": iris.rows[:1]}, key=keys["primary"] + "x").status == 401

    def test_record_and_probe_say_running(self, ws: Workspace, endpoint: Deployed) -> None:
        record = record_of(ws, "iris-main")
        assert record["state"] == RUNNING and record["uri"] == endpoint.uri
        assert record["target"] == endpoint.target.kind and endpoint.info["target"] == endpoint.target.kind
        assert (record["model_name"], record["model_version"]) == ("iris", 1)
        assert target_for_record(record).probe(record) == (True, "")  # a new target object, as another process
        assert endpoint_status(ws, record) == (RUNNING, "")

    def test_logs_show_the_server_output(self, ws: Workspace, endpoint: Deployed, capfd: pytest.CaptureFixture) -> None:
        record = record_of(ws, "iris-main")
        target_for_record(record).logs(record, follow=False)
        assert f"serving iris-main (model iris:1) on {endpoint.uri}" in capfd.readouterr().out

    def test_stop_frees_the_port_and_probe_says_gone(self, ws: Workspace, iris: Iris, deployer: Deployer) -> None:
        ep = deployer(iris.mv, name="iris-stop")
        assert not port_free(ep.port, "127.0.0.1")
        other = target_for_record(ep.record)  # as `mltrain endpoints delete` in another process
        other.stop(ep.record)
        assert port_free(ep.port, "127.0.0.1")
        alive, why = other.probe(ep.record)
        assert alive is False and why
        assert endpoint_status(ws, ep.record)[0] == FAILED
        other.stop(ep.record)  # no error when it is gone

    def test_redeploy_replaces_the_server_and_keeps_keys_and_uri(
        self, ws: Workspace, iris: Iris, deployer: Deployer
    ) -> None:
        first = deployer(iris.mv, name="iris-swap")
        copy = register_file(ws, "iris-copy", iris.path, cpu=1.0)
        second = deployer(copy, name="iris-swap")
        assert second.info["replaced"] == "iris:1" and second.info["model"] == "iris-copy:1"
        assert second.info["keys"] == {} and second.uri == first.uri  # the keys were kept, the URI too
        assert "replacing endpoint iris-swap (model iris:1)" in deployer.log
        assert target_for_record(first.record).probe(first.record)[0] is False  # the old server is gone
        resp = score(second.uri, {"data": iris.rows}, key=first.info["keys"]["primary"])
        assert resp.status == 200 and resp.json()["predictions"] == iris.predictions
        record = record_of(ws, "iris-swap")
        assert (record["model_name"], record["state"]) == ("iris-copy", RUNNING)

    def test_a_server_that_fails_to_start_fails_the_deploy_with_its_output(
        self, ws: Workspace, deployer: Deployer, tmp_path: Path
    ) -> None:
        import joblib

        path = tmp_path / "not_a_model.joblib"
        joblib.dump({"just": "a dict"}, path)
        broken = register_file(ws, "broken", path)
        with pytest.raises(DeployError) as err:
            deployer(broken, name="broken-ep")
        assert "the server of endpoint broken-ep stopped before it was ready" in str(err.value)
        assert "none of the methods" in str(err.value)  # the end of the server's own output
        record = record_of(ws, "broken-ep")
        assert record["state"] == FAILED and "stopped before it was ready" in record["error"]
        assert endpoint_status(ws, record)[0] == FAILED
        assert target_for_record(record).probe(record)[0] is False  # nothing left running

    def test_cpu_sets_the_workers_and_the_limits(self, ws: Workspace, open_endpoint: Deployed) -> None:
        info = open_endpoint.info
        assert (info["workers"], info["cpu"], info["memory_gb"]) == (2, 2.0, 1.0)
        record = record_of(ws, "iris-open")
        assert (record["workers"], record["cpu"], record["memory_gb"]) == (2, 2.0, 1.0)
        config = json.loads((Path(record["folder"]) / CONFIG_FILE).read_text())
        assert config["workers"] == 2
        self.assert_resources(record)

    def test_auth_off_serves_without_keys(self, ws: Workspace, open_endpoint: Deployed, iris: Iris) -> None:
        assert open_endpoint.info["auth"] is False and open_endpoint.info["keys"] == {}
        record = record_of(ws, "iris-open")
        assert not (Path(record["folder"]) / KEYS_FILE).exists()
        resp = score(open_endpoint.uri, {"data": iris.rows[:5]})
        assert resp.status == 200 and resp.json()["predictions"] == iris.predictions[:5]
        with pytest.raises(DeployError, match="auth: false"):
            regenerate_key(ws, "iris-open", "primary")
