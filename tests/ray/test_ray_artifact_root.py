"""A Ray job with the artifact root on object storage (moto's S3 server on loopback, ``open_moto``:
tests/ray/conftest.py): the node fetches the snapshot from the bucket itself by signed URLs, and uploads
the run's outputs/ and logs/ into it itself, by the presigned POST policy handed over with the job (no
credentials on the node); the driver makes each upload a blob once the store computed its announced
hash: the files are the run's artifacts, a model registers from them and a named output becomes a data
version, though they never came through the job's log (nor into the local run folder). A blob in the
bucket that is not what its name says is refused by the node, and the job is submitted again with the
snapshot carried from the driver. The warm actors of a sweep do the same: their node fetches the snapshot
once for every child it forks (or has it carried to the actor), and each child's outputs go into the
bucket by the policy it was started with. A run whose driver was killed is recovered by the next command,
which adopts what the node uploaded (the staging prefix comes from the run's job reference, and only
when it is one of that run's). Nothing the node posted stays under the run's staging prefix after the
run; other runs' uploads are left alone. The policy lives ``compute.signed_url_expires_s``."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest
from conformance import SIGNAL_AWARE
from raycluster import jobs_client
from support import start_mltrain, write_script

from mltrain.workspace import Workspace, WorkspaceSettings
from mltrain.workspace.runs import new_run_id

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


def a_wrong_blob_first(
    open_moto, project: Path, cluster_env: dict[str, str], then: str = ""
) -> tuple[dict[str, str], str]:
    """The run's environment with a fresh bucket as artifact root, in which the blob of the script (which
    prints REAL and the token returned, then runs ``then``) is there first with another content (FAKE)."""
    bucket = open_moto.bucket(f"ray-bad-{os.urandom(4).hex()}")
    env = {**cluster_env, **open_moto.env(), "MLTRAIN_ARTIFACT_ROOT": f"s3://{bucket}/arts"}
    token = os.urandom(8).hex()
    write_script(project / "src", "job.py", f"print('REAL {token}')\n{then}")
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


def test_warm_actors_whose_nodes_refuse_a_blob_get_the_snapshot_carried_each_once(
    ray_cluster, open_moto, mltrain, cli_json, project, cluster_env, tmp_path
):
    """Two warm actors (one per node): the first that cannot fetch the snapshot has it carried; the other
    gets it carried too (before its first trial, or when it finds the same), and every trial runs the real
    script; no actor is told twice."""
    met = tmp_path / "met"  # both nodes are on this machine: the first trial waits there for a second one
    met.mkdir()
    meet = (
        "import os, sys, time\n"
        f"open(os.path.join({str(met)!r}, sys.argv[sys.argv.index('--x') + 1]), 'w').close()\n"
        f"while len(os.listdir({str(met)!r})) < 2 and time.time() < {time.time() + 120}:\n"
        "    time.sleep(0.05)\n"
    )
    env, token = a_wrong_blob_first(open_moto, project, cluster_env, then=meet)
    two = [*SWEEP[:2], "sweep.max_concurrent_runs=2", "+job.arguments.x=1,2,3,4"]  # overlapping: both actors serve
    proc = mltrain(*two, *RUN, f"compute.address={ray_cluster.dashboard_url}", env=env)
    assert proc.returncode == 0, proc.output
    kids = sweep_children(cli_json, env)
    assert len(kids) == 4
    by_actor: dict[str, list[str]] = {}
    for kid, log in kids:
        assert kid["status"] == "Completed" and kid["job_ref"]["actor"].startswith("mltrain-warm-"), log
        assert f"REAL {token}" in log and "FAKE" not in log, log
        by_actor.setdefault(kid["job_ref"]["actor"], []).append(log)
    assert len(by_actor) == 2, by_actor.keys()  # both actors served
    refused = "could not fetch the snapshot from the artifact root itself (job.py: the content is not the one"
    assert any(refused in log and "it is carried to the worker" in log for _kid, log in kids)
    for logs in by_actor.values():  # carried to each actor once, for its later trials too
        assert sum(refused in log for log in logs) <= 1, "\n=====\n".join(log for _kid, log in kids)


def test_warm_trials_get_their_data_input_and_upload_what_they_make_of_it_into_the_bucket(
    ray_cluster, open_moto, mltrain, cli_json, project, cluster_env
):
    """A warm sweep whose trials read a data asset (``job.inputs``) with the artifact root on the bucket: each
    trial gets the version's files, and the model it makes of them goes into the bucket from its node."""
    bucket = open_moto.bucket(f"ray-in-{os.urandom(4).hex()}")
    env = {**cluster_env, **open_moto.env(), "MLTRAIN_ARTIFACT_ROOT": f"s3://{bucket}/arts"}
    raw = project / "raw"
    raw.mkdir()
    content = os.urandom(50_000)  # fresh: in no node's cache
    (raw / "rows.bin").write_bytes(content)
    version = cli_json("data", "create", "raw", str(raw), env=env)
    write_script(
        project / "src",
        "job.py",
        "import os, sys\nsrc = sys.argv[sys.argv.index('--data') + 1]\nos.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/model.bin', 'wb').write(open(os.path.join(src, 'rows.bin'), 'rb').read()[::-1])\n",
    )
    inputs = ["+job.arguments.data=${inputs.d}", f"+job.inputs.d.path=data:raw:{version['version']}"]
    proc = mltrain(*SWEEP, *RUN, f"compute.address={ray_cluster.dashboard_url}", *inputs, env=env)
    assert proc.returncode == 0, proc.output
    kids = sweep_children(cli_json, env)
    assert len(kids) == 2
    made = hashlib.sha256(content[::-1]).hexdigest()
    for kid, log in kids:
        assert kid["status"] == "Completed" and kid["job_ref"]["actor"].startswith("mltrain-warm-"), log
        assert "input d: " in log, log
        assert [(i["key"], i["name"], i["version"]) for i in kid["inputs"]] == [("d", "raw", version["version"])]
        assert {a["path"]: a["sha256"] for a in kid["artifacts"]}["outputs/model.bin"] == made
        assert re.search(r"outputs: 1 files \(.+?\) uploaded by the node of warm Ray worker \S+ into \S+ itself", log)
        assert not (Path(kid["run_dir"]) / "outputs" / "model.bin").exists()  # never came through the driver
    body = open_moto.client().get_object(Bucket=bucket, Key=f"arts/blobs/sha256/{made[:2]}/{made[2:]}")["Body"].read()
    assert body == content[::-1]


def _bucket_env(open_moto, cluster_env: dict[str, str], name: str) -> tuple[str, dict[str, str]]:
    bucket = open_moto.bucket(f"{name}-{os.urandom(4).hex()}")
    return bucket, {**cluster_env, **open_moto.env(), "MLTRAIN_ARTIFACT_ROOT": f"s3://{bucket}/arts"}


def _staged_keys(open_moto, bucket: str) -> list[str]:
    return sorted(
        o["Key"] for o in open_moto.client().list_objects_v2(Bucket=bucket, Prefix="arts/incoming/").get("Contents", [])
    )


def _another_runs_upload(open_moto, bucket: str) -> str:
    """An upload under another run's staging prefix (its run still going): no run of this test may touch it."""
    key = f"arts/incoming/{new_run_id()}/{os.urandom(16).hex()}/0"
    open_moto.client().put_object(Bucket=bucket, Key=key, Body=b"another run's output")
    return key


def _killed_mid_run(ray_cluster, project, env: dict[str, str]) -> dict:
    """Start a run whose script waits for a signal (then writes outputs/stopped.txt), kill its driver
    once the script runs; the run's record as the dead driver left it (no command has recovered it yet)."""
    from test_ray_runs import Follower, bare

    write_script(project / "src", "job.py", f"{SIGNAL_AWARE}# {os.urandom(8).hex()}\n")
    run = Follower(start_mltrain(project, *bare(ray_cluster.dashboard_url), env=env))
    run.wait_for("READY")
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait(30)
    ws = Workspace(WorkspaceSettings.resolve(str(project / ".mltrain")))
    [listed] = ws.runs.list(limit=None)
    return ws.runs.get(listed["id"])


def test_a_run_whose_driver_was_killed_is_recovered_with_what_its_node_uploaded(
    ray_cluster, open_moto, cli, cli_json, project, cluster_env
):
    bucket, env = _bucket_env(open_moto, cluster_env, "ray-lost")
    rec = _killed_mid_run(ray_cluster, project, env)
    staging = rec["job_ref"]["staging"]  # recorded with the job, for whoever attaches to it
    assert re.fullmatch(rf"incoming/{rec['id']}/[0-9a-f]{{32}}/", staging), rec["job_ref"]
    assert "Signature" not in json.dumps(rec["job_ref"]) and open_moto.secret not in json.dumps(rec["job_ref"])
    open_moto.client().put_object(Bucket=bucket, Key=f"arts/{staging}99", Body=b"posted, never announced")
    other = _another_runs_upload(open_moto, bucket)

    proc = cli("runs", "list", env=env)  # any command recovers orphaned runs first: stops the job, adopts
    assert proc.returncode == 0, proc.output
    info = cli_json("runs", "show", rec["id"], env=env)
    assert info["status"] == "Failed" and "driver lost" in info["error"]
    assert not info.get("problems") and "could not" not in proc.stderr, (info, proc.stderr)
    artifacts = {a["path"]: a["sha256"] for a in info["artifacts"]}
    assert artifacts["outputs/stopped.txt"] == hashlib.sha256(b"SIGTERM").hexdigest()  # the node's, adopted
    assert not (Path(info["run_dir"]) / "outputs" / "stopped.txt").exists()  # it never came through the driver
    assert _staged_keys(open_moto, bucket) == [other]  # the stray upload went; the other run's stayed


def test_a_staging_prefix_changed_in_the_runs_record_is_refused(
    ray_cluster, open_moto, cli, cli_json, project, cluster_env
):
    bucket, env = _bucket_env(open_moto, cluster_env, "ray-hostile")
    rec = _killed_mid_run(ray_cluster, project, env)
    other = _another_runs_upload(open_moto, bucket)
    hostile = other.removeprefix("arts/").removesuffix("0")  # another run's prefix: never adopted nor removed
    ws = Workspace(WorkspaceSettings.resolve(str(project / ".mltrain")))
    ws.runs.set_job_ref(rec["id"], {**rec["job_ref"], "staging": hostile})

    proc = cli("runs", "list", env=env)
    assert proc.returncode == 0, proc.output
    info = cli_json("runs", "show", rec["id"], env=env)
    assert info["status"] == "Failed" and "driver lost" in info["error"]
    problem = f"names the staging prefix {hostile!r}, which is not one of this run's"
    assert any(problem in p for p in info["problems"]), info["problems"]
    assert problem in proc.stderr
    assert "outputs/stopped.txt" not in {a["path"] for a in info["artifacts"]}
    staged = _staged_keys(open_moto, bucket)
    assert other in staged  # the other run's upload is untouched
    assert any(k.startswith(f"arts/{rec['job_ref']['staging']}") for k in staged)  # the node's stay, not lost


GO_WAIT = (
    "import os, sys, time\n"
    "os.makedirs('outputs', exist_ok=True)\nopen('outputs/result.txt', 'w').write('done')\n"
    "print('READY', flush=True)\n"
    "while not os.path.exists({go!r}):\n    time.sleep(0.1)\n"
)


def test_a_finished_run_leaves_nothing_under_its_staging_prefix_and_its_policy_lives_as_configured(
    ray_cluster, open_moto, cli_json, project, cluster_env, tmp_path
):
    from test_ray_runs import Follower, bare

    bucket, env = _bucket_env(open_moto, cluster_env, "ray-left")
    go = tmp_path / "go"
    write_script(project / "src", "job.py", GO_WAIT.format(go=str(go)) + f"# {os.urandom(8).hex()}\n")
    before = time.time()
    run = Follower(
        start_mltrain(project, *bare(ray_cluster.dashboard_url, "compute.signed_url_expires_s=900"), env=env)
    )
    run.wait_for("READY")
    ws = Workspace(WorkspaceSettings.resolve(str(project / ".mltrain")))
    [listed] = ws.runs.list(limit=None)
    ref = ws.runs.get(listed["id"])["job_ref"]
    info = jobs_client(ray_cluster).get_job_info(f"mltrain-{listed['id']}-1")
    policy = json.loads(info.runtime_env["env_vars"]["MLTRAIN_RAY_OUTPUTS_POST"])["fields"]["policy"]
    expires = datetime.fromisoformat(json.loads(base64.b64decode(policy))["expiration"].replace("Z", "+00:00"))
    assert before + 900 - 2 <= expires.timestamp() <= time.time() + 900 + 2  # not the old 24 h
    open_moto.client().put_object(Bucket=bucket, Key=f"arts/{ref['staging']}99", Body=b"posted, never announced")
    other = _another_runs_upload(open_moto, bucket)
    go.touch()
    assert run.finish() == 0, run.text + run.err
    assert "removed 1 uploads of the node left under" in run.text + run.err  # said in the run's log
    shown = cli_json("runs", "show", listed["id"], env=env)
    assert {a["path"] for a in shown["artifacts"]} >= {"outputs/result.txt"}
    assert _staged_keys(open_moto, bucket) == [other]  # the stray upload went with the run; the other run's stayed
