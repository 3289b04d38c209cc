"""A job input on the real Ray cluster: the node a run lands on fetches each file of an s3:// data version
itself, from the S3 server (moto, on loopback), by the signed URL the driver handed it (nothing carried
with the job, no credentials on the node); a second run on that node moves 0 bytes. (``open_moto``:
tests/ray/conftest.py.)"""

from __future__ import annotations

import json
import os

import pytest
from support import write_script

pytestmark = pytest.mark.slow

READER = (
    "import json, os, sys\n"
    "path = sys.argv[sys.argv.index('--data') + 1]\n"
    "got = {os.path.relpath(os.path.join(r, n), path): open(os.path.join(r, n), 'rb').read().hex()\n"
    "       for r, _d, names in os.walk(path) for n in names}\n"
    "print('SEEN ' + json.dumps({'files': got, 'secret': 'AWS_SECRET_ACCESS_KEY' in os.environ}))\n"
)


def seen(proc) -> dict:
    assert proc.returncode == 0, proc.output
    return json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("SEEN "))[5:])


def test_a_node_fetches_an_s3_input_itself_and_a_second_run_moves_nothing(
    ray_cluster, open_moto, mltrain, cli_json, project, cluster_env
):
    bucket = open_moto.bucket(f"ray-{os.urandom(4).hex()}")
    content = {"a.csv": os.urandom(2000), "sub/b.bin": os.urandom(70_000)}  # fresh: in no node's cache
    client = open_moto.client()
    for rel, data in content.items():
        client.put_object(Bucket=bucket, Key=f"raw/{rel}", Body=data)
    env = {**cluster_env, **open_moto.env()}  # the driver signs with the key; the nodes get none
    version = cli_json("data", "create", "raw", f"s3://{bucket}/raw", env=env)
    write_script(project / "src", "read.py", READER)
    run = [
        "+compute=cluster",
        f"compute.address={ray_cluster.dashboard_url}",
        "+compute.resources.worker_node=1",  # both runs on the worker node: its cache has the data the 2nd time
        "environment=system",
        "~register",
        "job.source_dir=src",
        "job.script=read.py",
        "+job.arguments.data=${inputs.d}",
        f"+job.inputs.d.path=data:raw:{version['version']}",
    ]
    first = mltrain(*run, env=env)
    got = seen(first)
    assert got["files"] == {rel: data.hex() for rel, data in content.items()}
    assert not got["secret"]  # the job had no credentials: the signed URLs were enough
    assert "(0 files), 2 fetched by the nodes from its datastore" in first.output, first.output  # nothing carried
    assert "input d: 72000 bytes moved into " in first.output and "cache (2 files)" in first.output, first.output

    second = mltrain(*run, env=env)
    assert seen(second)["files"] == got["files"]
    assert "input d: 0 bytes moved (all in " in second.output, second.output
