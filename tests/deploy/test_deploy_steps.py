"""The steps of a deploy one at a time, without a server: validate, resources, the endpoint folder
(model checked against its sha256, keys), the port a re-deploy keeps, the server plan."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from deploytools import free_port

from mltrain.deploy.base import KEYS_FILE
from mltrain.deploy.keys import digest
from mltrain.deploy.local import LocalTarget
from mltrain.deploy.steps import Request, lay_out_folder, replace_old_server, resources, server_plan, validate
from mltrain.errors import ConfigError, DeployError, WorkspaceError
from mltrain.registry.from_file import register_file
from mltrain.registry.store import ModelRegistry
from mltrain.remote.procs import hostname
from mltrain.workspace import Workspace, WorkspaceSettings
from mltrain.workspace.endpoints import EndpointStore
from mltrain.workspace.models import ModelVersion


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(WorkspaceSettings.resolve(str(tmp_path / "ws")))


@pytest.fixture
def mv(ws: Workspace, tmp_path: Path) -> ModelVersion:
    import joblib

    path = tmp_path / "model.joblib"
    joblib.dump({"weights": [1, 2, 3]}, path)
    return register_file(ws, "m", path, cpu=3.0, memory_gb=0.5)


def test_validate_refuses_an_archived_model_or_a_bad_name_before_anything_is_recorded(ws, mv):
    archived = ModelRegistry.of(ws).set_archived(mv.ref)
    with pytest.raises(DeployError, match="model m:1 is archived") as err:
        validate(ws, archived, LocalTarget())
    assert "--restore" in str(err.value)
    with pytest.raises(ConfigError, match="endpoint"):
        validate(ws, mv, LocalTarget(name="no spaces allowed"))
    assert EndpointStore(ws).list() == [] and not (ws.root / "endpoints" / "m").exists()
    req = validate(ws, mv, LocalTarget())
    assert req.name == "m" and req.folder == ws.root / "endpoints" / "m"
    assert req.model_rel == "model/v1/model.joblib" and req.fmt == "joblib"


def test_resources_come_from_the_options_else_the_registration(mv):
    assert resources(mv, LocalTarget()) == (3.0, 0.5, 3)
    assert resources(mv, LocalTarget(cpu=2.6, memory_gb=2)) == (2.6, 2.0, 3)
    assert resources(mv, LocalTarget(cpu=0.4))[2] == 1  # at least one worker
    bare = ModelVersion("bare", 1, "model.joblib", "0" * 64, "joblib")
    assert resources(bare, LocalTarget()) == (1.0, None, 1)


def test_the_folder_gets_the_checked_model_and_keys_for_empty_slots_only(ws, mv):
    req = validate(ws, mv, LocalTarget())
    kept = digest("the old primary key")
    keys = lay_out_folder(ws, req, {"primary_key_sha256": kept, "keys_updated_at": 1.0})
    assert (req.folder / req.model_rel).read_bytes() == ws.blobs.read_bytes(mv.sha256)
    assert list(keys.made) == ["secondary"] and keys.digests["primary"] == kept
    assert keys.digests["secondary"] == digest(keys.made["secondary"]) and keys.updated_at != 1.0
    keys_file = req.folder / KEYS_FILE
    assert json.loads(keys_file.read_text()) == keys.digests
    assert oct(keys_file.stat().st_mode & 0o777) == "0o600"

    again = lay_out_folder(ws, req, {f"{s}_key_sha256": d for s, d in keys.digests.items()} | {"keys_updated_at": 7.0})
    assert again.made == {} and again.digests == keys.digests and again.updated_at == 7.0


def test_auth_off_writes_no_keys(ws, mv):
    req = validate(ws, mv, LocalTarget(name="open", auth=False))
    keys = lay_out_folder(ws, req, None)
    assert keys.made == {} and not (req.folder / KEYS_FILE).exists()


def test_a_model_blob_that_does_not_match_its_sha256_is_not_laid_out(ws, mv):
    req = validate(ws, mv, LocalTarget())
    blob = ws.blobs.path(mv.sha256)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"tampered")
    with pytest.raises(WorkspaceError, match=mv.sha256[:12]):
        lay_out_folder(ws, req, None)
    assert not (req.folder / req.model_rel).exists()


def test_a_redeploy_keeps_the_old_port_when_it_is_free_on_the_same_host(ws, mv):
    req = validate(ws, mv, LocalTarget())
    assert replace_old_server(req, None, print) == 0  # a new endpoint: any free port
    port = free_port()
    old = {"name": "m", "model_name": "m", "model_version": 1, "target": "local", "machine": hostname(),
           "pid": None, "host": "127.0.0.1", "port": port}  # fmt: skip
    lines: list[str] = []
    assert replace_old_server(req, old, lines.append) == port
    assert lines == ["replacing endpoint m (model m:1)"]
    assert replace_old_server(req, {**old, "host": "127.0.0.2"}, print) == 0
    fixed = validate(ws, mv, LocalTarget(port=port + 1))
    assert replace_old_server(fixed, old, print) == port + 1  # the option wins


def test_the_server_plan_holds_the_settings_and_the_workspace_label(ws, mv):
    req: Request = validate(ws, mv, LocalTarget(max_body_mb=0.5, auth=False))
    from mltrain.environments.base import Materialised

    plan = server_plan(ws, req, Materialised("venv", "0" * 64, "/nowhere", "python3"), 8123)
    assert plan.settings["port"] == 8123 and plan.settings["max_body_bytes"] == 1 << 19
    assert plan.settings["model_sha256"] == mv.sha256 and plan.settings["auth"] is False
    assert plan.labels == {"mltrain.workspace": str(ws.root)} and (plan.workers, plan.cpu) == (3, 3.0)
    assert (plan.shim_dir / "mltrain" / "serving" / "__main__.py").is_file()
