"""A Ray job with the artifact root on object storage (moto's S3 server on loopback, ``open_moto``:
tests/ray/conftest.py): the node fetches the snapshot from the bucket itself by signed URLs, and uploads
the run's outputs/ and logs/ into it itself, by the presigned POST policy handed over with the job (no
credentials on the node); the driver makes each upload a blob once the store computed its announced
hash: the files are the run's artifacts, a model registers from them and a named output becomes a data
version, though they never came through the job's log (nor into the local run folder). A blob in the
bucket that is not what its name says is refused by the node, and the job is submitted again with the
snapshot carried from the driver. The warm actors of a sweep do the same: their node fetches the snapshot
once for every child it forks (or has it carried to the actor), and each child's outputs go into the
bucket by the policy it was started with."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
from support import write_script

pytestmark = pytest.mark.slow

WRITER = (
    "import hashlib, os, pickle\n"
    "os.makedirs('outputs', exist_ok=True)\nos.makedirs('logs', exist_ok=True)\n"
    "data = pickle.dumps({'weights': os.urandom(400_000)})\n"
    "open('outputs/model.joblib', 'wb').write(data)\n"
    "open('logs/own.log', 'w').write('a log line')\n"
    "print('SHA ' + hashlib.sha256(data).hexdigest())\n"
    "print('SECRET', 'AWS_SECRET_ACCESS_KEY' in os.environ, 'MLTRAIN_RAY_OUTPUTS_POST' in os.environ)\n"
    "import sys\nout = sys.argv[sys.argv.index('--out') + 1]\n"
    "open(os.path.join(out, 'rows.csv'), 'w').write('a,b\\n1,2\\n')\n"
)

RUN = ["+compute=cluster", "environment=system", "~register", "job.source_dir=src", "job.script=job.py"]


def test_the_node_uploads_outputs_into_the_bucket_itself(
    ray_cluster, open_moto, mltrain, cli_json, project, cluster_env
):
    bucket = open_moto.bucket(f"ray-arts-{os.urandom(4).hex()}")
    env = {**cluster_env, **open_moto.env(), "MLTRAIN_ARTIFACT_ROOT": f"s3://{bucket}/arts"}
    write_script(project / "src", "job.py", f"{WRITER}# {os.urandom(8).hex()}\n")  # fresh: in no node's cache
    named = ["+job.arguments.out=${outputs.feat}", "+job.outputs.feat.path=data:feat"]  # a data version made
    proc = mltrain(*RUN, f"compute.address={ray_cluster.dashboard_url}", *named, env=env)
    assert proc.returncode == 0, proc.output
    assert re.search(
        r"snapshot: [1-9]\d* bytes fetched from the artifact root into this node's cache \(1 files\)", proc.output
    ), proc.output
    sha = re.search(r"^SHA ([0-9a-f]{64})$", proc.stdout, re.M).group(1)
    assert "SECRET False False" in proc.stdout  # neither the key nor the upload policy reached the script
    moved = re.search(
        r"outputs: (\d+) files \(.+?\) uploaded by the node of Ray job \S+ into \S+ itself, (.+) through", proc.output
    )
    assert moved is not None, proc.output
    assert moved.group(1) == "3"  # outputs/model.joblib, outputs/data/feat/rows.csv and logs/own.log
    amount, unit = moved.group(2).split()
    assert unit == "B" or (unit == "KB" and float(amount) < 50), moved.group(0)  # the log carried no 400 kB model

    [listed] = cli_json("runs", "list", env=env)
    shown = cli_json("runs", "show", listed["id"], env=env)
    artifacts = {a["path"]: a for a in shown["artifacts"]}
    assert artifacts["outputs/model.joblib"]["sha256"] == sha and "logs/own.log" in artifacts
    run_dir = Path(shown["run_dir"])
    assert not (run_dir / "outputs" / "model.joblib").exists()  # never came through the driver
    body = open_moto.client().get_object(Bucket=bucket, Key=f"arts/blobs/sha256/{sha[:2]}/{sha[2:]}")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha
    left = open_moto.client().list_objects_v2(Bucket=bucket, Prefix="arts/incoming/").get("KeyCount", 0)
    assert left == 0  # every staged upload went, once checked

    feat = cli_json("data", "show", "feat", env=env)  # registered from the bucket, not from the run folder
    assert feat["lineage"]["produced_by"]["run"] == listed["id"]
    assert [(e["relpath"], e["size"]) for e in feat["manifest"]] == [("rows.csv", 8)]
    assert not (run_dir / "outputs" / "data" / "feat" / "rows.csv").exists()

    model = cli_json(
        "models", "register", "from-ray", "--run", listed["id"], "--path", "outputs/model.joblib",
        "--framework", "ScikitLearn", "--framework-version", "1.5.0", env=env,
    )  # fmt: skip
    assert model["run_id"] == listed["id"] and json.dumps(model).count(sha) >= 1


def a_wrong_blob_first(open_moto, project: Path, cluster_env: dict[str, str]) -> tuple[dict[str, str], str]:
    """The run's environment with a fresh bucket as artifact root, in which the blob of the script (which
    prints REAL and the token returned) is there first with another content (FAKE)."""
    bucket = open_moto.bucket(f"ray-bad-{os.urandom(4).hex()}")
    env = {**cluster_env, **open_moto.env(), "MLTRAIN_ARTIFACT_ROOT": f"s3://{bucket}/arts"}
    token = os.urandom(8).hex()
    write_script(project / "src", "job.py", f"print('REAL {token}')\n")
    sha = hashlib.sha256((project / "src" / "job.py").read_bytes()).hexdigest()
    key = f"arts/blobs/sha256/{sha[:2]}/{sha[2:]}"  # there first: the driver's upload leaves it
    open_moto.client().put_object(Bucket=bucket, Key=key, Body=b"print('FAKE')\n")
    return env, token


def test_a_blob_that_is_not_its_name_is_refused_by_the_node_and_the_snapshot_carried(
    ray_cluster, open_moto, mltrain, project, cluster_env
):
    env, token = a_wrong_blob_first(open_moto, project, cluster_env)
    proc = mltrain(*RUN, f"compute.address={ray_cluster.dashboard_url}", env=env)
    assert proc.returncode == 0, proc.output
    assert f"REAL {token}" in proc.stdout and "FAKE" not in proc.stdout
    assert "could not fetch the snapshot from the artifact root itself (job.py: the content is not the one" in (
        proc.stderr + proc.stdout
    ), proc.output
    assert "it is carried with the job" in proc.stderr + proc.stdout


# a sweep whose children are forked by one warm actor (sweep.prewarm, the default): the same direct path
SWEEP = ["-m", "sweep.primary_metric.name=score", "sweep.max_concurrent_runs=1", "+job.arguments.x=1,2"]


def sweep_children(cli_json, env: dict[str, str]) -> list[tuple[dict, str]]:
    """Each child of the sweep (``runs show``) with its log, oldest first."""
    kids = [cli_json("runs", "show", r["id"], env=env) for r in cli_json("runs", "list", env=env)]
    kids = sorted((k for k in kids if k.get("parent_run_id")), key=lambda k: k["created_at"])
    return [(k, (Path(k["run_dir"]) / "logs" / "std_log.txt").read_text()) for k in kids]


def test_warm_sweep_children_fetch_the_snapshot_and_upload_outputs_into_the_bucket_themselves(
    ray_cluster, open_moto, mltrain, cli_json, project, cluster_env
):
    bucket = open_moto.bucket(f"ray-warm-{os.urandom(4).hex()}")
    env = {**cluster_env, **open_moto.env(), "MLTRAIN_ARTIFACT_ROOT": f"s3://{bucket}/arts"}
    write_script(project / "src", "job.py", f"{WRITER}# {os.urandom(8).hex()}\n")  # fresh: in no node's cache
    named = ["+job.arguments.out=${outputs.feat}", "+job.outputs.feat.path=data:feat"]
    proc = mltrain(*SWEEP, *RUN, f"compute.address={ray_cluster.dashboard_url}", *named, env=env)
    assert proc.returncode == 0, proc.output
    kids = sweep_children(cli_json, env)
    assert len(kids) == 2
    fetched = []
    for kid, log in kids:
        assert kid["status"] == "Completed" and "forked by warm Ray worker" in log, log
        assert kid["job_ref"]["actor"].startswith("mltrain-warm-")
        found = re.search(
            r"snapshot: (\d+) bytes fetched from the artifact root into this node's cache \((\d) files", log
        )
        assert found is not None, log  # the actor got the snapshot's list, not the snapshot
        fetched.append((int(found.group(1)) > 0, found.group(2)))
        sha = re.search(r"^SHA ([0-9a-f]{64})$", log, re.M).group(1)
        assert "SECRET False False" in log  # neither the key nor the upload policy reached the script
        moved = re.search(
            r"outputs: (\d+) files \(.+?\) uploaded by the node of warm Ray worker \S+ into \S+ itself, (.+) through",
            log,
        )
        assert moved is not None and moved.group(1) == "3", log  # model.joblib, data/feat/rows.csv, own.log
        amount, unit = moved.group(2).split()
        assert unit == "B" or (unit == "KB" and float(amount) < 50), moved.group(0)  # the actor carried no model
        artifacts = {a["path"]: a for a in kid["artifacts"]}
        assert artifacts["outputs/model.joblib"]["sha256"] == sha and "logs/own.log" in artifacts
        assert not (Path(kid["run_dir"]) / "outputs" / "model.joblib").exists()  # never came through the driver
        key = f"arts/blobs/sha256/{sha[:2]}/{sha[2:]}"
        assert hashlib.sha256(open_moto.client().get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest() == sha
    assert fetched == [(True, "1"), (False, "0")]  # once per node: the second child found it in the node's cache
    assert open_moto.client().list_objects_v2(Bucket=bucket, Prefix="arts/incoming/").get("KeyCount", 0) == 0

    # each child's named output became a version of feat, registered from the bucket
    shown = [cli_json("data", "show", f"feat:{v}", env=env) for v in (1, 2)]
    assert {d["lineage"]["produced_by"]["run"] for d in shown} == {k["id"] for k, _ in kids}
    assert all([(e["relpath"], e["size"]) for e in d["manifest"]] == [("rows.csv", 8)] for d in shown)
    assert not any((Path(k["run_dir"]) / "outputs" / "data" / "feat" / "rows.csv").exists() for k, _ in kids)


def test_a_warm_actor_whose_node_refuses_a_blob_gets_the_snapshot_carried(
    ray_cluster, open_moto, mltrain, cli_json, project, cluster_env
):
    env, token = a_wrong_blob_first(open_moto, project, cluster_env)
    proc = mltrain(*SWEEP, *RUN, f"compute.address={ray_cluster.dashboard_url}", env=env)
    assert proc.returncode == 0, proc.output
    kids = sweep_children(cli_json, env)
    assert len(kids) == 2
    for kid, log in kids:
        assert kid["status"] == "Completed" and kid["job_ref"]["actor"].startswith("mltrain-warm-"), log
        assert f"REAL {token}" in log and "FAKE" not in log, log
    first = kids[0][1]
    assert "could not fetch the snapshot from the artifact root itself (job.py: the content is not the one" in first
    assert "it is carried to the worker" in first
    assert "could not fetch" not in kids[1][1]  # carried to the actor once, for later trials too
