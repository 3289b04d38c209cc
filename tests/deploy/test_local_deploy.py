"""No-code deployment to the local target, over real HTTP: keys, bad input, health, metrics, state, delete."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from deploytools import (
    children,
    eventually,
    free_port,
    model_truth,
    pid_exists,
    port_free,
    request,
    run,
    run_json,
    score,
)


def test_run_with_deploy_local_serves_the_models_predictions(mltrain, cli, project: Path):
    """python -m mltrain +deploy=local: train, register, deploy; the printed key scores like the model itself."""
    proc = mltrain("+deploy=local")
    try:
        assert proc.returncode == 0, proc.output
        uri = re.search(r"endpoint: sklearn-iris at (http://127\.0\.0\.1:\d+)", proc.stdout).group(1)
        primary = re.search(r"primary key: (\S+)", proc.stdout).group(1)
        secondary = re.search(r"secondary key: (\S+)", proc.stdout).group(1)
        truth = model_truth(project, "sklearn-iris:1")
        assert truth["sklearn"] == "1.7.2"

        resp = score(uri, {"data": truth["rows"]}, key=primary)
        assert resp.status == 200, resp.body
        assert resp.json()["predictions"] == truth["predictions"]
        rows_by_name = [dict(zip(truth["columns"], row, strict=True)) for row in truth["rows"][:10]]
        assert score(uri, {"data": rows_by_name}, key=secondary).json()["predictions"] == truth["predictions"][:10]

        assert score(uri, {"data": truth["rows"][:1]}).status == 401
        assert score(uri, {"data": truth["rows"][:1]}, key=primary + "x").status == 401

        # the server runs in the model's own environment: scikit-learn 1.7.2, whatever this interpreter has
        shown = json.loads(cli("endpoints", "show", "sklearn-iris", "--json").stdout)
        assert shown["state"] == "Running" and shown["model"] == "sklearn-iris:1" and shown["auth"] is True
        exe = Path(f"/proc/{shown['pid']}/cmdline").read_bytes().split(b"\0")[0].decode()
        assert exe.startswith(shown["env_location"])
        version = os.popen(f"{exe} -c 'import sklearn; print(sklearn.__version__)'").read().strip()
        assert version == "1.7.2"
        # keys are stored hashed: neither the workspace nor the keys file holds a key
        keys_file = Path(shown["folder"]) / "keys.json"
        assert oct(keys_file.stat().st_mode & 0o777) == "0o600"
        assert primary not in keys_file.read_text() and primary not in proc.stderr
        assert not any(primary.encode() in p.read_bytes() for p in (project / ".mltrain").glob("mltrain.db*"))
    finally:
        cli("endpoints", "delete", "sklearn-iris", "--missing-ok")


def test_deploy_an_alias_with_bad_inputs_health_metrics_and_swagger(trained, deploy):
    assert trained.cli("models", "alias", "sklearn-iris", "1", "prod").returncode == 0
    info = deploy("sklearn-iris@prod", "--target", "local", "--name", "iris-prod", "--max-body-mb", "0.01")
    assert info["model"] == "sklearn-iris:1" and info["state"] == "Running"
    uri, key = info["uri"], info["keys"]["primary"]
    rows, expected = trained.truth["rows"], trained.truth["predictions"]

    malformed = score(uri, None, key=key, raw=b'{"data": [[1, 2, 3, 4]')
    assert malformed.status == 400 and "JSON" in malformed.json()["error"]
    wrong_width = score(uri, {"data": [[1.0, 2.0, 3.0]]}, key=key)
    assert wrong_width.status == 400 and "4" in wrong_width.json()["error"]
    not_numbers = score(uri, {"data": [["a", "b", "c", "d"]]}, key=key)
    assert not_numbers.status == 400
    too_big = score(uri, {"data": rows * 20}, key=key)  # about 40 KB, over 0.01 MB
    assert too_big.status == 413
    good = score(uri, {"data": rows[:30]}, key=key)
    assert good.status == 200 and good.json()["predictions"] == expected[:30]

    assert request(uri, "GET", "/health/live").status == 200
    assert request(uri, "GET", "/health/ready").status == 200
    assert request(uri, "GET", "/metrics").status == 401
    metrics = request(uri, "GET", "/metrics", headers={"Authorization": f"Bearer {key}"})
    assert metrics.status == 200 and b"# TYPE" in metrics.body
    swagger = request(uri, "GET", "/swagger.json")
    assert swagger.status == 200 and "/score" in swagger.json()["paths"]


def test_key_regeneration_takes_effect_without_restart(trained, deploy):
    info = deploy("sklearn-iris:1", "--name", "iris-keys")
    uri, old, secondary = info["uri"], info["keys"]["primary"], info["keys"]["secondary"]
    rows = trained.truth["rows"][:3]
    pid = trained.cli_json("endpoints", "show", "iris-keys")["pid"]
    before = trained.cli_json("endpoints", "keys", "iris-keys")["keys"]

    regen = trained.cli_json("endpoints", "keys", "iris-keys", "--regenerate", "primary")
    new = regen["key"]
    assert new != old
    assert eventually(lambda: score(uri, {"data": rows}, key=new).status == 200, attempts=100)
    assert score(uri, {"data": rows}, key=old).status == 401
    assert score(uri, {"data": rows}, key=secondary).status == 200
    after = trained.cli_json("endpoints", "keys", "iris-keys")["keys"]
    assert after["secondary"] == before["secondary"] and after["primary"] != before["primary"]
    assert trained.cli_json("endpoints", "show", "iris-keys")["pid"] == pid  # the same server process
    shown = trained.cli("endpoints", "keys", "iris-keys")
    assert "shown only when made" in shown.stdout and new not in shown.stdout


def test_a_killed_server_shows_failed_and_delete_frees_the_port(trained, deploy):
    port = free_port()
    info = deploy("sklearn-iris", "--name", "iris-kill", "--port", str(port))
    assert info["uri"] == f"http://127.0.0.1:{port}"
    listed = {e["name"]: e for e in trained.cli_json("endpoints", "list")}
    assert listed["iris-kill"]["state"] == "Running"
    assert listed["iris-kill"]["uri"] == info["uri"] and listed["iris-kill"]["target"] == "local"

    pid = listed["iris-kill"]["pid"]
    workers = children(pid)
    os.kill(pid, signal.SIGKILL)  # the server this test deployed
    assert eventually(lambda: not pid_exists(pid))
    listed = {e["name"]: e for e in trained.cli_json("endpoints", "list")}
    assert listed["iris-kill"]["state"] == "Failed"
    table = trained.cli("endpoints", "list").stdout
    assert re.search(r"iris-kill\s+sklearn-iris:1\s+local\s+\S+\s+Failed", table), table

    assert eventually(lambda: not any(pid_exists(w) for w in workers), attempts=200)  # workers follow it
    res = trained.cli("endpoints", "delete", "iris-kill")
    assert res.returncode == 0, res.output
    assert port_free(port)
    assert not (trained.folder / ".mltrain" / "endpoints" / "iris-kill").exists()
    again = trained.cli("endpoints", "delete", "iris-kill")
    assert again.returncode != 0 and "nothing to delete" in again.stderr
    assert trained.cli("endpoints", "delete", "iris-kill", "--missing-ok").returncode == 0


def test_delete_stops_a_running_server(trained, deploy):
    info = deploy("sklearn-iris", "--name", "iris-del")
    pid = trained.cli_json("endpoints", "show", "iris-del")["pid"]
    workers = children(pid)
    assert workers
    port = int(info["uri"].rsplit(":", 1)[1])
    logs = trained.cli("endpoints", "logs", "iris-del")
    assert logs.returncode == 0 and f"serving iris-del (model sklearn-iris:1) on {info['uri']}" in logs.stdout
    follower = subprocess.Popen(
        [sys.executable, "-m", "mltrain.cli.main", "endpoints", "logs", "iris-del", "-f"],
        cwd=trained.folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,  # unbuffered: readline takes the first line only, communicate() gets the rest
    )
    try:
        assert follower.stdout is not None
        first = follower.stdout.readline()  # it follows the log (deleted before it started: nothing to follow)
        res = trained.cli("endpoints", "delete", "iris-del")
        assert res.returncode == 0, res.output
        out, _ = follower.communicate(timeout=120)  # -f ends when the server stops
    finally:
        if follower.poll() is None:
            follower.kill()
    assert b"serving iris-del" in first + out
    assert not pid_exists(pid) and not any(pid_exists(w) for w in workers)
    assert port_free(port)
    assert "iris-del" not in {e["name"] for e in trained.cli_json("endpoints", "list")}


def test_cpu_sets_workers_and_memory_limit_is_applied(trained, deploy):
    deploy("sklearn-iris", "--name", "iris-cpu", "--cpu", "2", "--memory-gb", "1.5")
    shown = trained.cli_json("endpoints", "show", "iris-cpu")
    assert shown["workers"] == 2 and shown["cpu"] == 2.0 and shown["memory_gb"] == 1.5
    assert len(children(shown["pid"])) == 2  # two worker processes under the supervisor
    config = json.loads((Path(shown["folder"]) / "config.json").read_text())
    assert config["workers"] == 2 and config["memory_gb"] == 1.5  # the watchdog's limit

    # without options, resources come from the model's registration (cpu 1, memory 0.5 GB)
    deploy("sklearn-iris", "--name", "iris-default", "--cpu", "0.4")
    shown = trained.cli_json("endpoints", "show", "iris-default")
    assert shown["workers"] == 1 and shown["memory_gb"] == 0.5


def test_redeploy_replaces_the_model_and_keeps_keys_and_uri(trained, deploy):
    first = deploy("sklearn-iris:1", "--name", "iris-swap")
    registered = trained.cli_json(
        "models", "register", "sklearn-iris-copy", "--run", trained.run_id, "--path", "outputs/model.joblib"
    )
    assert registered["run_id"] == trained.run_id
    second = deploy("sklearn-iris-copy:1", "--name", "iris-swap")
    assert second["replaced"] == "sklearn-iris:1" and second["model"] == "sklearn-iris-copy:1"
    assert second["keys"] == {} and second["uri"] == first["uri"]
    resp = score(second["uri"], {"data": trained.truth["rows"]}, key=first["keys"]["primary"])
    assert resp.status == 200 and resp.json()["predictions"] == trained.truth["predictions"]
    listed = {e["name"]: e for e in trained.cli_json("endpoints", "list")}
    assert listed["iris-swap"]["model"] == "sklearn-iris-copy:1" and listed["iris-swap"]["state"] == "Running"


def test_auth_false_in_the_deploy_config_serves_without_keys(trained):
    res = run(trained.folder, "+deploy=local", "deploy.auth=false", "deploy.name=iris-open", module="mltrain")
    try:
        assert res.returncode == 0, res.output
        assert "primary key" not in res.stdout
        shown = trained.cli_json("endpoints", "show", "iris-open")
        assert shown["auth"] is False and shown["keys"] == {}
        resp = score(shown["uri"], {"data": trained.truth["rows"][:5]})
        assert resp.status == 200 and resp.json()["predictions"] == trained.truth["predictions"][:5]
        keys = trained.cli("endpoints", "keys", "iris-open", "--regenerate", "primary")
        assert keys.returncode != 0 and "auth: false" in keys.stderr
    finally:
        trained.cli("endpoints", "delete", "iris-open", "--missing-ok")


def test_unknown_deploy_option_fails_before_anything_runs(trained):
    before = len(trained.cli_json("runs", "list"))
    res = run(trained.folder, "+deploy=local", "+deploy.replicas=3", module="mltrain")
    assert res.returncode != 0
    assert "replicas" in res.stderr and "valid options" in res.stderr
    assert len(trained.cli_json("runs", "list")) == before


def test_deploy_errors_name_the_problem(trained):
    missing = trained.cli("endpoints", "deploy", "no-such-model")
    assert missing.returncode != 0 and "no model 'no-such-model'" in missing.stderr
    target = trained.cli("endpoints", "deploy", "sklearn-iris", "--target", "kubernetes")
    assert target.returncode != 0 and "local" in target.stderr and "docker" in target.stderr
    bad = trained.cli("endpoints", "deploy", "sklearn-iris", "--cpu", "-1")
    assert bad.returncode != 0 and "cpu" in bad.stderr
    unknown = trained.cli("endpoints", "show", "nope")
    assert unknown.returncode != 0 and "no endpoint 'nope'" in unknown.stderr


def test_a_server_that_cannot_start_fails_the_deploy_with_its_log(trained, tmp_path):
    """A model whose file is not an estimator: deploy fails with the end of the server's log, state Failed."""
    path = tmp_path / "not_a_model.joblib"
    import joblib

    joblib.dump({"just": "a dict"}, path)
    assert trained.cli("models", "register", "broken", "--path", str(path)).returncode == 0
    res = trained.cli("endpoints", "deploy", "broken", "--name", "broken-ep")
    try:
        assert res.returncode != 0
        assert "stopped before it was ready" in res.stderr and "none of the methods" in res.stderr
        listed = {e["name"]: e for e in run_json(trained.folder, "endpoints", "list")}
        assert listed["broken-ep"]["state"] == "Failed"
    finally:
        trained.cli("endpoints", "delete", "broken-ep", "--missing-ok")
