"""Deployment to the docker target against the real dockerd of the test session: train in a container,
deploy with +deploy=docker, container limits, predictions over HTTP, Failed state, delete."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from typing import Any

import pytest

pytestmark = pytest.mark.slow

GIB = 1024**3
PREDICT = (
    "import json, sys, joblib; from sklearn.datasets import load_iris; "
    "x, _ = load_iris(return_X_y=True, as_frame=True); m = joblib.load(sys.argv[1]); "
    "print(json.dumps({'rows': x.values.tolist(), 'predictions': m.predict(x).tolist()}))"
)


def post_score(uri: str, payload: Any, key: str | None) -> tuple[int, Any]:
    host, port = uri.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    try:
        conn.request("POST", "/score", body=json.dumps(payload).encode(), headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def truth_in_image(docker_client: Any, image: str, model_dir: str) -> dict[str, Any]:
    """The model's predictions on iris, computed in the training environment's image."""
    out = docker_client.containers.run(
        image,
        ["/opt/mltrain/venv/bin/python", "-c", PREDICT, "/model/model.joblib"],
        volumes={model_dir: {"bind": "/model", "mode": "ro"}},
        network_mode="host",
        remove=True,
    )
    return json.loads(out)


def test_train_and_deploy_in_docker_with_limits(mltrain, cli, cli_json, project, python_image, docker_client):
    proc = mltrain(
        "+compute=docker",
        f"environment.docker.base_image={python_image}",
        "+deploy=docker",
        "deploy.cpu=1",
        "deploy.memory_gb=0.75",
    )
    names: list[str] = []
    try:
        assert proc.returncode == 0, proc.output
        uri = re.search(r"endpoint: sklearn-iris at (http://127\.0\.0\.1:\d+)", proc.stdout).group(1)
        key = re.search(r"primary key: (\S+)", proc.stdout).group(1)
        names.append("sklearn-iris")
        shown = cli_json("endpoints", "show", "sklearn-iris")
        assert shown["target"] == "docker" and shown["state"] == "Running" and shown["uri"] == uri

        # the container: the serving image built FROM the model environment's base, with the limits
        info = docker_client.api.inspect_container(shown["container_id"])
        host_config = info["HostConfig"]
        assert host_config["Memory"] == int(0.75 * GIB) and host_config["MemorySwap"] == int(0.75 * GIB)
        assert host_config["NanoCpus"] == 1_000_000_000 and host_config["NetworkMode"] == "host"
        assert host_config["RestartPolicy"]["Name"] == "unless-stopped"  # an engine restart brings it back
        assert info["Config"]["Image"] == shown["env_location"]
        image = docker_client.images.get(shown["env_location"])
        assert image.labels["mltrain.env.name"] == "sklearn-serving"

        run = cli_json("runs", "list")[0]
        training_image = next(e for e in cli_json("envs", "list") if e["hash"] == run["env_hash"])["location"]
        dest = project / "dl"
        assert cli("models", "download", "sklearn-iris:1", "--dest", str(dest)).returncode == 0
        truth = truth_in_image(docker_client, training_image, str(dest))
        status, body = post_score(uri, {"data": truth["rows"]}, key)
        assert status == 200 and body["predictions"] == truth["predictions"]
        assert post_score(uri, {"data": truth["rows"][:2]}, None)[0] == 401

        # the server stops inside the container (not by the user): the engine restarts it on the same URI
        exec_id = docker_client.api.exec_create(shown["container_id"], ["sh", "-c", "kill -TERM 1"])["Id"]
        docker_client.api.exec_start(exec_id)
        deadline = time.monotonic() + 120
        while docker_client.api.inspect_container(shown["container_id"])["RestartCount"] < 1:
            assert time.monotonic() < deadline, "the container was not restarted"
            time.sleep(0.2)
        while True:
            try:
                status, body = post_score(uri, {"data": truth["rows"][:3]}, key)
                break
            except OSError:
                assert time.monotonic() < deadline, "the restarted endpoint does not answer"
                time.sleep(0.5)
        assert status == 200 and body["predictions"] == truth["predictions"][:3]

        # the CLI path, resources as options: cpu 2 -> 2 workers and a 2-CPU limit; the serving image is reused
        res = cli("endpoints", "deploy", "sklearn-iris:1", "--target", "docker", "--name", "iris-docker",
                  "--cpu", "2", "--memory-gb", "1", "--no-auth", "--json")  # fmt: skip
        assert res.returncode == 0, res.output
        names.append("iris-docker")
        second = json.loads(res.stdout)
        assert second["workers"] == 2 and second["env_hash"] == shown["env_hash"]
        cid = cli_json("endpoints", "show", "iris-docker")["container_id"]
        host_config = docker_client.api.inspect_container(cid)["HostConfig"]
        assert host_config["NanoCpus"] == 2_000_000_000 and host_config["Memory"] == GIB
        status, body = post_score(second["uri"], {"data": truth["rows"][:10]}, None)
        assert status == 200 and body["predictions"] == truth["predictions"][:10]

        # a container that died shows as Failed
        docker_client.api.kill(cid)
        listed = {e["name"]: e for e in cli_json("endpoints", "list")}
        assert listed["iris-docker"]["state"] == "Failed" and listed["sklearn-iris"]["state"] == "Running"

        port = int(uri.rsplit(":", 1)[1])
        for name in list(names):
            res = cli("endpoints", "delete", name)
            assert res.returncode == 0, res.output
            names.remove(name)
        assert port_free(port)
        left = docker_client.api.containers(all=True, filters={"label": "mltrain.endpoint"})
        assert left == []
    finally:
        for name in names:
            cli("endpoints", "delete", name, "--missing-ok")
