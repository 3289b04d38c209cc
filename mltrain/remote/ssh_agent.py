"""The helper mltrain runs on an SSH host (standard library only, Python >= 3.8): uploaded once as a zip
of the node-side package (:mod:`mltrain.remote`), unpacked into the folder ``AGENT`` that Python runs
(the zip itself runs too), ``python3 -S AGENT WORKDIR COMMAND [ARGS]`` (entered through
:mod:`~mltrain.remote.ssh_main`); the commands live in :mod:`~mltrain.remote.ssh_envs` and
:mod:`~mltrain.remote.ssh_jobs`.

A JSON request comes on stdin where a command needs one, and the answer is one JSON line on stdout
(``follow`` and ``pack`` stream instead). Layout of WORKDIR:
``blobs/<sha256>`` (content-addressed cache of uploaded files: snapshots and data inputs), ``refs/<id>``
(files of data references, :mod:`mltrain.remote.inputs`), ``runs/<run_id>/`` (run folders),
``venvs/<hash>/`` (environments), ``tools/uv/`` (uv, when the host had none), ``no-index.json``
(the package index found unreachable lately: :mod:`~mltrain.remote.ssh_index`). Docker images of
environments live in the engine the host's ``docker`` CLI reaches (its ``DOCKER_HOST``, context).

``serve`` keeps the helper running over one channel and runs every later command in a fork of itself
(:mod:`~mltrain.remote.ssh_serve`). A job is started by a supervisor (or by ``serve``) in a session
of its own; the job is the leader of its own process
group, writes its output to ``.mltrain/stdout`` and ``.mltrain/stderr`` in its run folder (so it
outlives the connection) and the supervisor records ``.mltrain/job.json`` (pgid, start token) and
``.mltrain/exit_code``. A job in a container is a foreground ``docker run`` in that group (signals
reach the container through it); stopping it also removes the container by name, so a killed CLI
leaves nothing running. Nothing here trusts paths from the request beyond WORKDIR.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from mltrain.remote import inputs as node_io
from mltrain.remote.ssh_envs import cmd_drop, cmd_image, cmd_venv
from mltrain.remote.ssh_host import answer, blob_files, fail, inside, is_blob_name, materialise_run, run_dir_of
from mltrain.remote.ssh_index import cmd_index
from mltrain.remote.ssh_jobs import (
    cmd_follow,
    cmd_kill,
    cmd_pack,
    cmd_remove,
    cmd_start,
    cmd_status,
    cmd_stop,
    cmd_supervise,
)
from mltrain.remote.ssh_outputs import cmd_outputs, cmd_put_outputs
from mltrain.remote.ssh_probe import cmd_probe, find_uv
from mltrain.remote.ssh_serve import serve


def cmd_missing(work: str) -> None:
    wanted = json.load(sys.stdin)
    blobs = os.path.join(work, "blobs")
    os.makedirs(blobs, exist_ok=True)
    answer([sha for sha in wanted if not is_blob_name(sha) or not os.path.isfile(os.path.join(blobs, sha))])


def cmd_materialise(work: str, run_id: str) -> None:
    """Make the run folder from cached blobs: files = [[path, sha256, size, mode], ...]."""
    missing = materialise_run(work, run_id, blob_files(json.load(sys.stdin)))
    if missing:  # the caller uploads these and asks again
        answer({"missing": missing})
        return
    answer({"run_dir": os.path.realpath(run_dir_of(work, run_id)), "missing": []})


def cmd_inputs(work: str, run_id: str) -> None:
    """Lay a run's inputs out from the host's cache (``blobs/``, ``refs/``: see :mod:`mltrain.remote.inputs`):
    request {inputs: [manifest, ...], outputs: [name, ...]}; answers the cache keys it lacks (the caller
    uploads them and asks again), else lays every input out and makes the outputs' folders."""
    req = json.load(sys.stdin)
    cache = node_io.NodeCache(os.path.realpath(work))
    for kind in ("blobs", "refs"):
        os.makedirs(os.path.join(work, kind), exist_ok=True)
    inputs = req["inputs"]
    try:
        missing = sorted({k for inp in inputs if inp["mode"] != node_io.DIRECT for k in cache.missing(inp["files"])})
        if missing:
            answer({"missing": missing})
            return
        run_dir = run_dir_of(work, run_id)
        copied = sum(node_io.materialise(cache, inp, run_dir) for inp in inputs)
        node_io.prepare_outputs(run_dir, [str(n) for n in req.get("outputs") or []])
    except node_io.InputError as exc:
        fail(str(exc))
    answer({"missing": [], "copied": copied})


def cmd_receive(work: str) -> None:
    """Input files into the host's cache, streamed on stdin (:func:`mltrain.remote.inputs.receive`)."""
    for kind in ("blobs", "refs"):
        os.makedirs(os.path.join(work, kind), exist_ok=True)
    try:
        files, size = node_io.receive(node_io.NodeCache(os.path.realpath(work)), sys.stdin.buffer)
    except (node_io.InputError, ValueError) as exc:
        fail(f"refused an input file: {exc}")
    answer({"files": files, "bytes": size})


def cmd_fetch(work: str) -> None:
    """Files into the host's cache (``blobs/``, ``refs/``), each fetched by the host itself from where its
    hint says (request {files: [[manifest entry, {url, etag}], ...]}: a signed URL of an object store) and
    checked against its size, sha256 or ETag before it takes its name; answers the cache keys fetched
    (the caller sends the others: unreachable, or not the recorded content)."""
    req = json.load(sys.stdin)
    cache = node_io.NodeCache(os.path.realpath(work))
    fetched = []
    for entry, hint in req["files"]:
        try:
            key = node_io.file_key(entry)
            if node_io.fetch_direct(cache, entry, hint):
                fetched.append(key)
        except node_io.InputError:
            continue
    answer({"fetched": fetched})


def cmd_inputs_changed(work: str) -> None:
    """After a run: the files of its mounted inputs (request {inputs: [...]}) that a script changed in the cache."""
    req = json.load(sys.stdin)
    answer({"changed": node_io.changed_mounts(node_io.NodeCache(os.path.realpath(work)), req["inputs"])})


def cmd_sha(work: str, path: str) -> None:
    """sha256 of a file under WORKDIR (tests and audits)."""
    with open(inside(work, path), "rb") as f:
        answer(hashlib.sha256(f.read()).hexdigest())


def cmd_serve(work: str, first: str = "") -> None:
    """The warm helper of a connection (:mod:`~mltrain.remote.ssh_serve`)."""
    serve(work, COMMANDS, first)


COMMANDS = {
    "probe": cmd_probe,
    "missing": cmd_missing,
    "materialise": cmd_materialise,
    "inputs": cmd_inputs,
    "inputs-changed": cmd_inputs_changed,
    "receive": cmd_receive,
    "fetch": cmd_fetch,
    "venv": cmd_venv,
    "image": cmd_image,
    "drop": cmd_drop,
    "index": lambda work: cmd_index(work, find_uv(work)),
    "start": cmd_start,
    "supervise": cmd_supervise,
    "status": cmd_status,
    "stop": cmd_stop,
    "kill": cmd_kill,
    "follow": cmd_follow,
    "pack": cmd_pack,
    "outputs": cmd_outputs,
    "put-outputs": cmd_put_outputs,
    "remove": cmd_remove,
    "sha": cmd_sha,
    "serve": cmd_serve,
}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in COMMANDS:
        fail("usage: AGENT WORKDIR {{{}}} ...".format(",".join(COMMANDS)), 2)
    work = os.path.expanduser(argv[0])
    COMMANDS[argv[1]](work, *argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
