"""Snapshots as Azure ML makes them, previewed before a run; a workspace found like git finds its
repository; a project's own conf/config.yaml keeps mltrain's Hydra settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import write_script

from mltrain.errors import SnapshotError
from mltrain.workspace import Workspace

RUN = ("environment=system", "~register", "job.source_dir=.", "job.script=train.py")


def _files(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_amlignore_replaces_gitignore_and_stale_outputs_are_left_out(mltrain, cli, cli_json, project):
    _files(
        project,
        {
            "train.py": "import os\nprint(sorted(os.listdir('.')))\nprint(os.path.exists('outputs/model.joblib'))\n",
            ".gitignore": "data/\n*.log\n",
            ".amlignore": "*.log\n",  # read instead of .gitignore here: data/ is included
            "data/rows.csv": "1,2\n",
            "debug.log": "x",
            "outputs/model.joblib": "stale",
            "logs/old.txt": "old",
            "pkg/.gitignore": "cache/\n",  # no .amlignore in pkg/: its .gitignore applies
            "pkg/cache/c.bin": "c",
            "pkg/m.py": "m",
        },
    )
    preview = cli_json("snapshots", "preview", ".")
    included = {e["path"] for e in preview["included"]}
    excluded = {e["path"]: e["rule"] for e in preview["excluded"]}
    assert {"train.py", "data/rows.csv", "pkg/m.py", ".gitignore", ".amlignore"} <= included
    assert excluded["debug.log"] == ".amlignore: *.log"
    assert excluded["pkg/cache/"] == "pkg/.gitignore: cache/"
    assert "top-level outputs/ and logs/" in excluded["outputs/"] and "logs/" in excluded
    table = cli("snapshots", "preview").stdout
    assert "Left out: 4 files" in table and ".amlignore: *.log" in table
    assert not (project / ".mltrain").exists()  # a preview creates nothing

    proc = mltrain(*RUN)
    assert proc.returncode == 0, proc.output
    assert "False" in proc.stdout  # the stale model was not put in the run folder
    assert "snapshot: left out outputs/ and logs/" in proc.stdout
    run = cli_json("runs", "show", cli_json("runs", "list")[0]["id"])
    snap = cli_json("snapshots", "show", run["snapshot_id"])
    assert {f["path"] for f in snap["files"]} == included
    assert "outputs/model.joblib" not in {a["path"] for a in run["artifacts"]}


def test_file_count_error_names_the_most_crowded_folders(project):
    ws = Workspace.open(str(project / ".mltrain"))
    _files(project / "src", {**{f"frames/f{i}.png": "x" for i in range(30)}, "train.py": "x", "a/b.py": "y"})
    with pytest.raises(SnapshotError) as err:
        ws.snapshots.take(project / "src", max_files=10)
    assert "folders with the most files: frames/ (30 files)" in str(err.value)
    assert "snapshots preview" in str(err.value)


def test_workspace_is_found_in_a_parent_folder(mltrain, cli, project):
    write_script(project, "train.py", "print('ok')\n")
    assert mltrain(*RUN).returncode == 0
    sub = project / "notebooks" / "deeper"
    sub.mkdir(parents=True)
    listed = cli("runs", "list", "--json", cwd=sub)
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 1
    proc = mltrain("environment=system", "~register", f"job.source_dir={project}", "job.script=train.py", cwd=sub)
    assert proc.returncode == 0, proc.output
    assert not (sub / ".mltrain").exists()
    assert len(json.loads(cli("runs", "list", "--json").stdout)) == 2


def test_read_only_commands_and_refused_runs_create_nothing(mltrain, cli, project):
    for args in (("runs", "list"), ("models", "list"), ("experiments", "list"), ("envs", "list")):
        proc = cli(*args, "--json")
        assert proc.returncode == 0 and json.loads(proc.stdout) == [], proc.output
    shown = cli("runs", "show", "x")
    assert shown.returncode == 2 and "no run 'x'" in shown.stderr
    refused = mltrain("environment=system", "~register", "job.source_dir=.", "job.script=missing.py")
    assert refused.returncode == 2 and "missing.py" in refused.stderr
    assert sorted(p.name for p in project.iterdir()) == []


def test_own_config_yaml_keeps_mltrains_hydra_settings(mltrain, cli_json, project):
    write_script(project, "train.py", "print('mine')\n")
    _files(
        project,
        {"conf/config.yaml": "defaults:\n  - mltrain_schema\n  - _self_\njob:\n  name: mine\n  script: train.py\n"},
    )
    proc = mltrain()
    assert proc.returncode == 0, proc.output
    assert sorted(p.name for p in project.iterdir()) == [".mltrain", "conf", "train.py"]  # no outputs/<date>/.hydra
    assert cli_json("runs", "list")[0]["overrides"] == []
