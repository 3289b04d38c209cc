"""``mltrain.Workspace()``: what the ``mltrain`` command reads (runs, models, endpoints, environments),
as plain records, plus the registry and endpoint actions the API's runs and Azure's stand-in use."""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrain.api.records import (
    EndpointRecord,
    EnvironmentRecord,
    ModelRecord,
    Records,
    RunRecord,
    records,
    run_record,
)

if TYPE_CHECKING:
    from mltrain.api.run import Run
    from mltrain.registry.store import ModelRegistry
    from mltrain.workspace import Workspace as Store
    from mltrain.workspace import WorkspaceSettings
    from mltrain.workspace.endpoints import Endpoint
    from mltrain.workspace.runs import Experiment


class Workspace:
    """The workspace at ``path`` (a folder; default: as the ``mltrain`` command finds it: ``$MLTRAIN_WORKSPACE``,
    else the ``.mltrain`` of this folder or its nearest parent), or at ``db_url`` + ``artifact_root``."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        db_url: str | None = None,
        artifact_root: str | os.PathLike[str] | None = None,
    ) -> None:
        from mltrain.workspace import WorkspaceSettings

        self.settings: WorkspaceSettings = WorkspaceSettings.resolve(
            None if path is None else os.fspath(path),
            db_url,
            None if artifact_root is None else os.fspath(artifact_root),
        )
        self._store: Store | None = None

    @property
    def path(self) -> Path:
        return self.settings.root

    @property
    def store(self) -> Store:
        """The workspace's stores (opened on first use; a missing workspace reads as empty until written)."""
        from mltrain.runs.recovery import recover_orphans
        from mltrain.workspace import Workspace as Store
        from mltrain.workspace import exists

        if self._store is None or (self._store.is_empty and exists(self.settings)):
            self._store = Store(self.settings, create=False)
            if not self._store.is_empty:
                recover_orphans(self._store)  # runs whose driver died: Failed, as every command does
        return self._store

    def _writable(self) -> Store:
        from mltrain.workspace import Workspace as Store

        if self.store.is_empty:
            self._store = Store(self.settings)
        return self.store

    @cached_property
    def _registry(self) -> ModelRegistry:
        from mltrain.registry.store import ModelRegistry

        return ModelRegistry.of(self._writable())

    def __repr__(self) -> str:
        return f"Workspace({str(self.settings.root)!r})"

    # -- runs ----------------------------------------------------------------------------------------
    def runs(
        self,
        experiment: str | None = None,
        where: str | Iterable[str] | None = None,
        tags: dict[str, str] | None = None,
        sort: str | None = None,
        ascending: bool = False,
        status: str | None = None,
        parent: str | None = None,
        limit: int | None = 50,
    ) -> Records[RunRecord]:
        """Runs, newest first (as ``mltrain runs list``): ``where="accuracy>0.9"`` (or several), ``tags``
        all present, ``sort`` by a metric's last value (highest first unless ``ascending``), ``parent`` a
        sweep's children; each with its last metrics and tags."""
        from mltrain.cli.metrics import parse_where

        wheres = [where] if isinstance(where, str) else list(where or [])
        rows = self.store.runs.list(
            experiment,
            status,
            parent_run_id=parent,
            limit=limit or None,
            where=[parse_where(w) for w in wheres],
            tags=tags,
            sort=sort,
            ascending=ascending,
        )
        return records(run_record(self.store, r) for r in rows)

    def run(self, run_id: str) -> Run:
        """The run (or sweep) ``run_id`` (a unique prefix will do)."""
        from mltrain.api.run import run_handle

        full_id = self.store.runs.resolve_id(run_id)
        return run_handle(self._writable(), full_id)

    def experiments(self) -> list[Experiment]:
        return self.store.runs.experiments()

    # -- models --------------------------------------------------------------------------------------
    def models(self, name: str | None = None, include_archived: bool = False) -> Records[ModelRecord]:
        """Registered model versions (of ``name``), newest first per name."""
        return records(self.store.models.list(name, include_archived))

    def model(self, ref: str) -> ModelRecord:
        """The version ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS`` names."""
        return self.store.models.get(ref)

    def register_model(self, name: str, path: str | os.PathLike[str], **request: Any) -> ModelRecord:
        """Register a file or folder as the next version of ``name`` (framework, framework_version,
        description, cpu, memory_gb, tags, properties, format: as ``mltrain models register``)."""
        from mltrain.registry.from_file import register_file

        return register_file(self._writable(), name, path, **request)

    def download_model(self, ref: str, dest: str | os.PathLike[str]) -> Path:
        """The model's files, verified against their hashes, into ``dest``."""
        return self._registry.download(ref, dest)

    # -- endpoints -----------------------------------------------------------------------------------
    def endpoints(self) -> Records[EndpointRecord]:
        """Every endpoint with its live state (checked now)."""
        return records(self._endpoint_record(r) for r in self.store.endpoints.list())

    def endpoint(self, name: str) -> EndpointRecord:
        return self._endpoint_record(self.store.endpoints.get(name))

    def _endpoint_record(self, rec: Endpoint, keys: dict[str, str] | None = None) -> EndpointRecord:
        from mltrain.views.endpoints import endpoint_view

        return EndpointRecord.pick(endpoint_view(self.store, rec), keys=dict(keys or {}))

    def deploy(self, model: str, name: str | None = None, target: str = "local", **options: Any) -> EndpointRecord:
        """Serve model version ``model`` (``NAME[:VERSION|@ALIAS]``) at endpoint ``name`` (default: the
        model's name) with deploy target ``target`` (conf/deploy/TARGET.yaml, a project's own first) and
        its ``options`` (cpu, memory_gb, auth, port, ...); the endpoint, with the keys made now."""
        from mltrain.config.deploy_targets import deploy_target
        from mltrain.deploy.service import deploy

        store = self._writable()
        made = deploy(store, store.models.get(model), deploy_target(target, {"name": name, **options}), log=_quiet)
        return self._endpoint_record(store.endpoints.get(made["name"]), keys=made.get("keys"))

    def endpoint_logs(self, name: str) -> str:
        """The scoring server's log of endpoint ``name`` (control characters escaped)."""
        import contextlib
        import io

        from mltrain.deploy.targets import target_for_record

        rec = self.store.endpoints.get(name)
        out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace")
        with contextlib.redirect_stdout(out):
            target_for_record(rec).logs(rec, False)
            out.flush()
        buffer = out.buffer
        assert isinstance(buffer, io.BytesIO)
        return buffer.getvalue().decode("utf-8", errors="replace")

    def delete_endpoint(self, name: str) -> None:
        """Stop the endpoint's server and remove it."""
        from mltrain.deploy.service import delete_endpoint

        delete_endpoint(self._writable(), name)

    def regenerate_key(self, name: str, slot: str = "primary") -> str:
        """A new ``primary`` or ``secondary`` key of endpoint ``name`` (the old one stops working)."""
        from mltrain.deploy.service import regenerate_key

        return regenerate_key(self._writable(), name, slot)

    # -- environments --------------------------------------------------------------------------------
    def environments(self) -> Records[EnvironmentRecord]:
        """Built environments, most recently used first."""
        return records(self.store.environments.list())


def _quiet(line: str) -> None:
    """Deploy progress: dropped (the API returns the endpoint; its errors carry the server's output)."""
