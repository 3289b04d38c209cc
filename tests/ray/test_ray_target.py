"""The cluster target's options and what it tells a sweep launcher (capacity), against the session's cluster."""

from __future__ import annotations

import json

import pytest

from mltrain.compute.configs import REDACTED, redact_overrides, redact_secrets
from mltrain.compute.ray import ClusterCompute
from mltrain.errors import ConfigError


def test_capacity_counts_the_runs_the_alive_nodes_hold(ray_cluster):
    def capacity(**options) -> int | None:
        target = ClusterCompute(address=ray_cluster.dashboard_url, token_file=str(ray_cluster.token_file), **options)
        return target.capacity()

    assert capacity() == 2  # one CPU on each of the two nodes
    assert capacity(num_cpus=0.5) == 4
    assert capacity(resources={"worker_node": 1}) == 1  # only the worker node has it
    assert capacity(num_cpus=2) == 0  # no node is that big: runs would stay pending


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"address": "not an address"}, "is not a cluster address"),
        ({"runtime_env": {"working_dir": "/elsewhere"}}, "which mltrain makes from the run"),
        ({"runtime_env": {"pip": ["numpy"]}}, "which mltrain makes from the run"),
        ({"max_retries": -1}, "must be >= 0"),
        ({"installer": "conda"}, "is not supported"),
        ({"signed_url_expires_s": 8 * 24 * 3600}, r"(?s)signed_url_expires_s=691200 is out of range.*7 days"),
        ({"signed_url_expires_s": 0}, "out of range"),
    ],
)
def test_bad_options_are_refused_with_the_fix(options, message):
    with pytest.raises(ConfigError, match=message):
        ClusterCompute(**options)


def test_token_is_redacted_from_what_a_run_stores():
    config = {"compute": {"_target_": "mltrain.compute.cluster.ClusterCompute", "token": "s3cret", "num_cpus": 1}}
    assert redact_secrets(config)["compute"] == {**config["compute"], "token": REDACTED}
    assert config["compute"]["token"] == "s3cret"  # the running config keeps it
    assert redact_overrides(["+compute=cluster", "compute.token=s3cret", "++compute.token=x"]) == [
        "+compute=cluster",
        f"compute.token={REDACTED}",
        f"++compute.token={REDACTED}",
    ]
    assert ClusterCompute(token=REDACTED).config.token is None  # a recorded config: look elsewhere for it


def test_compute_check_shows_the_clusters_nodes(ray_cluster, cli, cluster_env):
    import ray

    target = ["+compute=cluster", f"compute.address={ray_cluster.dashboard_url}"]
    proc = cli("compute", "check", "--json", *target, env=cluster_env)
    assert proc.returncode == 0, proc.output
    rows = [r for r in json.loads(proc.stdout) if r["state"] == "ALIVE"]
    by_ip = {r["host"]: r for r in rows}
    assert set(by_ip) == {"127.0.0.2", "127.0.0.3"}
    head, worker = by_ip["127.0.0.2"], by_ip["127.0.0.3"]
    assert head["head"] and not worker["head"]
    assert head["cpus"][1] == 1.0 and 0 <= head["cpus"][0] <= 1.0  # free / total
    assert worker["memory_bytes"][1] > 0 and worker["memory_bytes"][0] is not None
    assert worker["resources"]["worker_node"][1] == 1.0 and "worker_node" not in head["resources"]
    assert {r["ray"] for r in rows} == {ray.__version__} and {r["auth"] for r in rows} == {"token"}
    assert all(len(r["node_id"]) >= 16 for r in rows)
    text = cli("compute", "check", *target, env=cluster_env)
    assert text.returncode == 0, text.output
    assert "127.0.0.2 (head)" in text.stdout and "worker_node" in text.stdout and "FREE/TOTAL" in text.stdout
    assert "nodes alive; token authentication on" in text.stdout
