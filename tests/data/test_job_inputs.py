"""``job.inputs``: a data version, an s3:// URI or a local path reaches the script as ``${inputs.NAME}``,
``MLTRAIN_INPUT_NAME`` and Azure ML v1's ``Run.get_context().input_datasets``; a second run moves 0
bytes; the run records what it read; every bad input is refused before anything is recorded."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from moto_s3 import free_port

from mltrain.workspace import Workspace, WorkspaceSettings

READER = """
import json, os, sys
from azureml.core import Run
path = sys.argv[sys.argv.index("--data") + 1]
files = {}
for root, _dirs, names in os.walk(path):
    for n in names:
        full = os.path.join(root, n)
        files[os.path.relpath(full, path)] = open(full).read()
try:
    with open(os.path.join(path, "a.csv"), "a") as f:
        f.write("written by the script")
    wrote = True
except OSError:
    wrote = False
print("SEEN " + json.dumps({"files": files, "env": os.environ.get("MLTRAIN_INPUT_train") == path,
    "azure": Run.get_context().input_datasets.get("train") == path, "wrote": wrote, "path": path}))
"""


def seen(proc, codes: tuple[int, ...] = (0,)) -> dict:
    assert proc.returncode in codes, proc.output
    line = next(x for x in proc.stdout.splitlines() if x.startswith("SEEN "))
    return json.loads(line[5:])


@pytest.fixture
def job(project: Path) -> list[str]:
    (project / "src").mkdir()
    (project / "src" / "read.py").write_text(READER)
    return ["job.source_dir=src", "job.script=read.py", "~register", "+job.arguments.data=${inputs.train}"]


@pytest.fixture
def data(project: Path) -> dict[str, str]:
    """A folder of fresh content (nothing of it cached yet)."""
    folder = project / "data"
    (folder / "sub").mkdir(parents=True)
    content = {"a.csv": f"a,b\n{secrets.token_hex(8)}\n", "sub/b.txt": secrets.token_hex(8)}
    for rel, text in content.items():
        (folder / rel).write_text(text)
    return content


def links(project: Path, run_id: str) -> list:
    ws = Workspace(WorkspaceSettings.resolve(str(project / ".mltrain")))
    return ws.data.links(run_id=run_id)


def run_id_of(proc) -> str:
    return next(line.split()[1].rstrip(":") for line in proc.stdout.splitlines() if line.startswith("Run "))


def test_a_data_version_reaches_the_script_and_a_second_run_moves_nothing(mltrain, cli_json, job, data, project):
    version = cli_json("data", "create", "train", "data")
    first = mltrain(*job, "+job.inputs.train.path=data:train")
    got = seen(first)
    assert got["files"] == data and got["env"] and got["azure"]  # argument, variable and Azure's v1 API
    assert got["wrote"]  # download: a private copy the script may change
    assert "moved into this machine's cache (2 files" in first.output, first.output
    shown = cli_json("runs", "show", run_id_of(first))
    assert shown["config"]["job"]["inputs"]["train"]["path"] == "data:train:1"  # pinned: a rerun reads the same
    assert [(i["key"], i["name"], i["version"], i["mode"]) for i in shown["inputs"]] == [
        ("train", "train", 1, "download")
    ]
    [link] = links(project, run_id_of(first))
    assert (link.direction, link.name, link.data_name, link.data_version, link.digest, link.mode) == (
        "input",
        "train",
        "train",
        1,
        version["digest"],
        "download",
    )

    second = mltrain(*job, "+job.inputs.train.path=data:train:1")
    assert seen(second)["files"] == data  # the first run's change to its copy reached nobody
    assert "0 bytes moved (all in this machine's cache)" in second.output, second.output
    assert not Path(seen(second)["path"]).exists()  # the laid-out input is released after the run


def test_a_mounted_input_never_changes_for_a_later_run(mltrain, cli_json, job, data):
    cli_json("data", "create", "train", "data")
    first = mltrain(*job, "+job.inputs.train.path=data:train", "+job.inputs.train.mode=mount")
    assert seen(first)["files"] == data  # root writes to its own read-only copy; anyone else cannot write
    assert "problem" not in first.output
    again = seen(mltrain(*job, "+job.inputs.train.path=data:train", "+job.inputs.train.mode=mount"))
    assert again["files"] == data


def test_local_paths_and_direct_inputs(mltrain, job, data, project):
    local = seen(mltrain(*job, "+job.inputs.train.path=data"))
    assert local["files"] == data
    direct = mltrain(
        "job.source_dir=src",
        "job.script=read.py",
        "~register",
        "+job.arguments.data=${inputs.train}",
        "+job.inputs.train.path=data",
        "+job.inputs.train.mode=direct",
    )
    got = seen(direct)
    assert got["path"] == str(project / "data") and got["files"] == data  # the path itself


def test_an_s3_reference_input_and_a_changed_object(s3, mltrain, cli_json, job, project):
    s3.put("raw/a.csv", b"x,y\n1,2\n")
    s3.put("raw/sub/b.txt", secrets.token_hex(8).encode())
    cli_json("data", "create", "train", s3.url("raw"))
    first = mltrain(*job, "+job.inputs.train.path=data:train")
    assert seen(first)["files"]["a.csv"] == "x,y\n1,2\n"
    assert "0 bytes moved" in mltrain(*job, "+job.inputs.train.path=data:train").output

    s3.put("raw/c.csv", b"new")  # a new version of fresh content, then one file of it changes
    v2 = cli_json("data", "create", "train", s3.url("raw"))
    s3.put("raw/c.csv", b"changed")
    stale = mltrain(*job, f"+job.inputs.train.path=data:train:{v2['version']}")
    assert stale.returncode != 0
    assert "c.csv of data:train:2 changed at its source" in stale.output
    assert "SEEN" not in stale.stdout  # the script never started

    direct = mltrain(*job, "+job.inputs.train.path=data:train:1", "+job.inputs.train.mode=direct")
    assert seen(direct)["path"] == s3.url("raw")
    secrets_ = (s3.server.secret.encode(), s3.server.key_id.encode())  # the credentials reach no record or output
    for proc in (first, stale, direct):
        assert not any(x.decode() in proc.output for x in secrets_)
    for path in (project / ".mltrain").rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(x in content for x in secrets_), path


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ("+job.inputs.train.path=data:nosuch", ["no data asset 'nosuch'", "data assets: known"]),
        ("+job.inputs.train.path=data:known:9", ["has no version 9", "versions: 1"]),
        ("+job.inputs.train.path=data:known@prod", ["job.inputs.train", "prod"]),
        ("+job.inputs={1st: {path: data:known}}", ["'1st' is not a name for an input"]),
        ("+job.inputs.train.path=data:known", ["${inputs.other}", "job.inputs: train"]),
        (
            "+job.inputs.train={path: data:known, mode: copy}",
            ["mode is 'copy'", "download, mount, direct"],
        ),
        ("+job.inputs.train.path=nowhere/at/all", ["job.inputs.train.path nowhere/at/all does not exist"]),
        (
            "+job.inputs.train={path: data:known, nope: 1}",
            ["has no key 'nope'", "path, mode, type, datastore"],
        ),
    ],
)
def test_a_bad_input_is_refused_before_anything_is_recorded(mltrain, cli_json, project, data, override, needles):
    cli_json("data", "create", "known", "data")
    (project / "src").mkdir()
    (project / "src" / "read.py").write_text("print('ran')\n")
    argument = "${inputs.other}" if "${inputs.other}" in needles else "${inputs.train}"
    proc = mltrain("job.source_dir=src", "job.script=read.py", f"+job.arguments.data={argument}", override)
    assert proc.returncode != 0 and "Traceback" not in proc.output, proc.output
    for needle in needles:
        assert needle in proc.output, proc.output
    assert not (project / ".mltrain" / "runs").exists() or not any((project / ".mltrain" / "runs").iterdir())


def test_an_unreachable_datastore_is_refused_before_anything_is_recorded(s3, mltrain, job, project):
    conf = project / "conf" / "datastore"
    conf.mkdir(parents=True)
    (conf / "down.yaml").write_text(
        "defaults:\n  - s3_schema\n_target_: mltrain.workspace.datastores.objects.S3Datastore\n"
        f"url: s3://nowhere\nendpoint_url: http://127.0.0.1:{free_port()}\nretries: 0\nconnect_timeout_s: 2\n"
    )
    proc = mltrain(*job, "+job.inputs.train.path=s3://nowhere/raw", "+job.inputs.train.datastore=down")
    assert proc.returncode != 0 and "Traceback" not in proc.output, proc.output
    assert "job.inputs.train (s3://nowhere/raw)" in proc.output
    assert not (project / ".mltrain" / "runs").exists() or not any((project / ".mltrain" / "runs").iterdir())


def test_a_detached_run_of_an_unknown_data_version_is_refused_before_it_is_recorded(mltrain, cli_json, project, data):
    cli_json("data", "create", "known", "data")
    (project / "src").mkdir()
    (project / "src" / "read.py").write_text("print('ran')\n")
    proc = mltrain("detach=true", "job.source_dir=src", "job.script=read.py", "+job.inputs.train.path=data:known:4")
    assert proc.returncode == 2 and "Traceback" not in proc.output, proc.output
    assert "data asset known has no version 4 (versions: 1)" in proc.output
    assert not (project / ".mltrain" / "runs").exists() or not any((project / ".mltrain" / "runs").iterdir())


def test_every_trial_of_a_sweep_reads_the_input(mltrain, cli, cli_json, job, data, project):
    cli_json("data", "create", "train", "data")
    sweep = mltrain("-m", *job, "+job.inputs.train.path=data:train", "+job.arguments.C=1,2", "sweep.register=none")
    assert sweep.returncode == 0, sweep.output
    children = [r for r in cli_json("runs", "list") if r.get("parent_run_id")]
    assert len(children) == 2
    for child in children:  # forked from warm interpreters: the arguments resolved for each child
        assert seen(cli("runs", "logs", child["id"]))["files"] == data
        [link] = links(project, child["id"])
        assert (link.name, link.data_name, link.data_version) == ("train", "train", 1)
