"""A run's outputs written by an SSH host straight into an object-store artifact root (commands of
:mod:`mltrain.remote.ssh_agent`): ``outputs`` lists the regular files under outputs/ and logs/ with
their sha256 and size (links and anything else are left out), ``put-outputs`` uploads the files the
driver gives signed PUT URLs for (request {files: [[path, url, headers], ...]}) and answers those
that went. The driver has the store check each upload's hash before it becomes a blob, so nothing
said here is trusted; a file that could not go comes back in the ``pack`` archive."""

from __future__ import annotations

import json
import os
import sys

from mltrain.remote.node_outputs import DIRECT_DIRS, output_files, put_file, regular
from mltrain.remote.ssh_host import answer, run_dir_of

DIRECT_MARK = ".mltrain/direct-outputs"  # in a run folder: the host uploads DIRECT_DIRS itself


def cmd_outputs(work: str, run_id: str) -> None:
    answer(output_files(run_dir_of(work, run_id)))


def cmd_put_outputs(work: str, run_id: str) -> None:
    req = json.load(sys.stdin)
    run_dir = os.path.realpath(run_dir_of(work, run_id))
    uploaded = []
    for rel, url, headers in req["files"]:
        full = os.path.join(run_dir, rel)
        if os.path.isabs(rel) or ".." in rel.split("/") or rel.split("/")[0] not in DIRECT_DIRS:
            continue
        if os.path.realpath(full) != os.path.normpath(full):
            continue  # a link on the way
        try:
            if regular(full) is not None and put_file(full, str(url), {str(k): str(v) for k, v in headers.items()}):
                uploaded.append(rel)
        except OSError:
            continue
    answer({"uploaded": uploaded})
