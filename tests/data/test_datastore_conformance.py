"""Every built-in writable datastore passes the conformance suite: the workspace's blob store and a
folder on disk, and S3 against a real S3-compatible server (moto's, on loopback)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from datastore_suite import DatastoreSuite

from mltrain.workspace.datastores import open_datastore, workspace_node
from mltrain.workspace.datastores.base import Datastore
from mltrain.workspace.datastores.folder import FolderDatastore
from mltrain.workspace.datastores.objects import S3Datastore


class TestWorkspaceDatastore(DatastoreSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Datastore:
        return open_datastore(workspace_node(), tmp_path / "artifacts")


class TestFolderDatastore(DatastoreSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Datastore:
        (tmp_path / "shared").mkdir()
        return FolderDatastore(str(tmp_path / "shared"))


class TestS3Datastore(DatastoreSuite):
    @pytest.fixture
    def store(self, s3) -> Datastore:
        return S3Datastore(url=s3.url(f"prefix-{secrets.token_hex(3)}"), endpoint_url=s3.server.endpoint)
