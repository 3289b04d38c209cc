"""Stored paths and symlinks are untrusted: nothing is written outside a destination, no file outside a
source or run folder is stored, and job.script / names are checked before anything runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import insert, update
from support import write_script

from mltrain.errors import ConfigError, RegistryError
from mltrain.registry.store import ModelRegistry
from mltrain.workspace import Workspace, tables
from mltrain.workspace.paths import UnsafePathError, safe_join

SYSTEM = ["environment=system", "~register", "job.source_dir=src"]
EVIL = ["../escaped.txt", "/tmp/mltrain-abs-escape.txt", "a/../../escaped2.txt", "..", "", "a\\..\\..\\x"]


@pytest.mark.parametrize("rel", EVIL)
def test_safe_join_refuses_paths_that_leave_the_destination(tmp_path, rel):
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path / "dest", rel)


def test_safe_join_refuses_a_symlink_in_the_destination_that_points_out(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(UnsafePathError, match="outside"):
        safe_join(dest, "link/x.txt")
    assert safe_join(dest, "sub/x.txt") == dest.resolve() / "sub/x.txt"


def _workspace(project: Path) -> Workspace:
    return Workspace.open(str(project / ".mltrain"))


def _run_with_artifacts(ws: Workspace, paths: list[str]) -> str:
    sha = ws.blobs.put_bytes(b"payload")
    ws.runs.create("20260101_000000_abcdef", "exp", run_dir=None)
    with ws.db.write() as conn:
        conn.execute(
            insert(tables.artifacts),
            [{"run_id": "20260101_000000_abcdef", "path": p, "sha256": sha, "size": 7} for p in paths],
        )
    return "20260101_000000_abcdef"


@pytest.mark.parametrize("rel", ["../escaped.txt", "ABSOLUTE", "outputs/../../escaped.txt"])
def test_runs_download_refuses_a_stored_path_that_escapes(project, cli, rel):
    absolute = project.parent / "abs-escape.txt"
    rel = str(absolute) if rel == "ABSOLUTE" else rel
    ws = _workspace(project)
    run_id = _run_with_artifacts(ws, ["outputs/fine.txt", rel])
    proc = cli("runs", "download", run_id, "--dest", "out")
    assert proc.returncode == 2, proc.output
    assert "refusing the stored path" in proc.stderr
    assert not (project / "escaped.txt").exists() and not absolute.exists()
    assert not (project / "out" / "outputs" / "fine.txt").exists()  # refused before anything is written


def test_snapshot_restore_refuses_a_manifest_that_escapes(project, cli):
    ws = _workspace(project)
    write_script(project / "src", "train.py", "print(1)\n")
    snap = ws.snapshots.take(project / "src")
    import json

    manifest = json.dumps([["../../escaped.txt", snap.files[0].sha256, snap.files[0].size, 0o644]]).encode()
    evil = ws.blobs.put_bytes(manifest)
    with ws.db.write() as conn:
        conn.execute(
            insert(tables.snapshots).values(id=evil, source_dir="x", file_count=1, total_bytes=1, created_at=0)
        )
    proc = cli("snapshots", "restore", evil[:16], "restored/deeper")
    assert proc.returncode == 2 and "refusing the stored path" in proc.stderr, proc.output
    assert not (project / "escaped.txt").exists()


def test_models_download_refuses_a_stored_path_that_escapes(project, cli):
    ws = _workspace(project)
    model = project / "m.joblib"
    import joblib

    joblib.dump({"a": 1}, model)
    ModelRegistry.of(ws).register("m", model, format="joblib")
    with ws.db.write() as conn:
        conn.execute(update(tables.models).values(path="../../escaped.joblib"))
        conn.execute(update(tables.model_files).values(relpath="../../escaped.joblib"))
    proc = cli("models", "download", "m:1", "--dest", "dl/deeper")
    assert proc.returncode == 2 and "refusing the stored path" in proc.stderr, proc.output
    assert not (project / "escaped.joblib").exists()


def test_snapshot_skips_symlinks_out_of_the_source_and_keeps_links_inside(project, mltrain, cli_json):
    src = project / "src"
    write_script(src, "train.py", "import os\nprint(sorted(os.listdir('.')))\n")
    secret = project / "secret.txt"
    secret.write_text("host secret\n")
    (src / "leak.txt").symlink_to(secret)
    (src / "leakdir").symlink_to(project, target_is_directory=True)
    (src / "data").mkdir()
    (src / "data" / "real.csv").write_text("1,2\n")
    (src / "alias.csv").symlink_to(src / "data" / "real.csv")
    proc = mltrain(*SYSTEM, "job.script=train.py")
    assert proc.returncode == 0, proc.output
    run = cli_json("runs", "list")[0]
    snap = cli_json("snapshots", "show", run["snapshot_id"])
    paths = {f["path"] for f in snap["files"]}
    assert paths == {"train.py", "data/real.csv", "alias.csv"}
    log = (Path(run["run_dir"]) / "logs" / "std_log.txt").read_text()
    assert "skipped leak.txt: a symlink" in log and "skipped leakdir/" in log
    assert not (Path(run["run_dir"]) / "alias.csv").is_symlink()
    assert (Path(run["run_dir"]) / "alias.csv").read_text() == "1,2\n"


def test_a_collected_folder_that_is_itself_a_link_out_is_skipped(project, mltrain, cli_json):
    outside = project / "host-folder"
    outside.mkdir()
    (outside / "secret.txt").write_text("host secret")
    write_script(
        project / "src",
        "swap.py",
        f"import os\nos.symlink({str(outside)!r}, 'outputs')\nos.makedirs('.mltrain', exist_ok=True)\n"
        f"os.symlink({str(outside)!r}, '.mltrain/uploads')\n",
    )
    proc = mltrain(*SYSTEM, "job.script=swap.py")
    assert proc.returncode == 0, proc.output
    run = cli_json("runs", "list")[0]
    arts = [a["path"] for a in cli_json("runs", "show", run["id"])["artifacts"]]
    assert not any("secret" in a for a in arts), arts
    log = (Path(run["run_dir"]) / "logs" / "std_log.txt").read_text()
    assert "skipped outputs/: it resolves to" in log


def test_output_collection_never_follows_a_link_out_of_the_run_folder(project, mltrain, cli_json):
    secret = project / "shadow.txt"
    secret.write_text("root:secret\n")
    write_script(
        project / "src",
        "leak.py",
        f"import os\nos.makedirs('outputs/sub', exist_ok=True)\n"
        f"os.symlink({str(secret)!r}, 'outputs/leak')\n"
        f"os.symlink({str(project)!r}, 'outputs/leakdir')\n"
        "open('outputs/real.txt', 'w').write('mine')\n"
        "os.symlink(os.path.abspath('outputs/real.txt'), 'outputs/sub/inside')\n",
    )
    proc = mltrain(*SYSTEM, "job.script=leak.py")
    assert proc.returncode == 0, proc.output
    run = cli_json("runs", "list")[0]
    shown = cli_json("runs", "show", run["id"])
    arts = {a["path"] for a in shown["artifacts"]}
    assert "outputs/leak" not in arts and not any(a.startswith("outputs/leakdir") for a in arts)
    assert {"outputs/real.txt", "outputs/sub/inside"} <= arts
    log = (Path(run["run_dir"]) / "logs" / "std_log.txt").read_text()
    assert "skipped outputs/leak: a symlink" in log


@pytest.mark.parametrize("script", ["/etc/passwd", "../outside.py", "sub/../../outside.py", "link.py"])
def test_job_script_outside_the_source_is_a_config_error(project, mltrain, script):
    write_script(project / "src", "train.py", "print(1)\n")
    write_script(project, "outside.py", "print('ran outside')\n")
    (project / "src" / "sub").mkdir()
    (project / "src" / "link.py").symlink_to(project / "outside.py")
    proc = mltrain(*SYSTEM, f"job.script={script}")
    assert proc.returncode == 2, proc.output
    assert "job.script" in proc.stderr and "ran outside" not in proc.stdout
    assert not (project / ".mltrain" / "runs").exists() or not any((project / ".mltrain" / "runs").iterdir())


@pytest.mark.parametrize("name", ["../../evilexp", "a/b", "", "x" * 10_000, "-flag", "a b"])
def test_bad_experiment_names_are_refused(project, mltrain, name):
    write_script(project / "src", "train.py", "print(1)\n")
    proc = mltrain(*SYSTEM, "job.script=train.py", f"experiment_name='{name}'")
    assert proc.returncode == 2, proc.output
    assert "not a valid experiment name" in proc.stderr
    assert not (project / "evilexp").exists()


@pytest.mark.parametrize("name", ["../../evil", "a/b", "", "y" * 10_000, ".hidden"])
def test_bad_model_and_endpoint_names_are_refused(project, name):
    from mltrain.deploy.configs import check_endpoint_name

    ws = _workspace(project)
    model = project / "m.joblib"
    import joblib

    joblib.dump({"a": 1}, model)
    with pytest.raises(RegistryError, match="not a valid model name"):
        ModelRegistry.of(ws).register(name, model)
    with pytest.raises(ConfigError, match="not a valid endpoint name"):
        check_endpoint_name(name)
    with pytest.raises(ConfigError, match="not a valid experiment name"):
        ws.runs.create("20260101_000000_aaaaaa", name)
    assert os.listdir(project) == [".mltrain", "m.joblib"] or set(os.listdir(project)) == {".mltrain", "m.joblib"}
