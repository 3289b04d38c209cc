"""``azureml.core.Workspace``: mltrain's workspace, found as the ``mltrain`` command finds it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ._api import mltrain_api, note
from ._unsupported import unsupported

AZURE_FIELDS = ("subscription_id", "resource_group", "workspace_name")


def _azure_config(path: str | os.PathLike[str] | None) -> Path | None:
    """Azure's ``config.json`` as ``Workspace.from_config`` finds it: ``path`` (a file or a folder), else
    ``config.json`` or ``.azureml/config.json`` in this folder or a parent."""
    if path is not None:
        p = Path(path)
        if p.is_file():
            return p
        starts = [p]
    else:
        starts = [Path.cwd(), *Path.cwd().parents]
    for folder in starts:
        for candidate in (folder / "config.json", folder / ".azureml" / "config.json"):
            if candidate.is_file():
                return candidate
    return None


class Workspace:
    """The mltrain workspace (``$MLTRAIN_WORKSPACE`` or the nearest ``.mltrain``); Azure's subscription,
    resource group and name are accepted and ignored."""

    def __init__(
        self,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace_name: str | None = None,
        auth: Any = None,
        _location: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        given = [k for k, v in (("subscription_id", subscription_id), ("resource_group", resource_group)) if v]
        if given:
            note(f"Workspace: {', '.join(given)} ignored: the workspace is mltrain's own")
        self._api = mltrain_api("Workspace")
        self._ws = self._api.Workspace(_location)
        self.name = workspace_name or self._ws.path.parent.name or "mltrain"

    @staticmethod
    def from_config(path: str | os.PathLike[str] | None = None, auth: Any = None, **kwargs: Any) -> Workspace:
        """The workspace the ``mltrain`` command would use here. An Azure ``config.json`` (``path``, or
        found as Azure finds it) is read for its workspace name; its subscription fields are ignored."""
        found = _azure_config(path)
        name = None
        if found is not None:
            try:
                data = json.loads(found.read_text())
            except (OSError, ValueError):
                data = {}
            name = data.get("workspace_name") if isinstance(data, dict) else None
            ignored = [k for k in AZURE_FIELDS[:2] if isinstance(data, dict) and data.get(k)]
            note(
                f"{found}: {', '.join(ignored) or 'its Azure fields'} ignored: the workspace is mltrain's own "
                "(MLTRAIN_WORKSPACE, else the nearest .mltrain folder)"
            )
        return Workspace(workspace_name=name)

    @staticmethod
    def get(name: str | None = None, auth: Any = None, subscription_id: str | None = None, **kwargs: Any) -> Workspace:
        """The workspace the ``mltrain`` command would use here (``name`` and Azure's fields are ignored)."""
        return Workspace(subscription_id=subscription_id, workspace_name=name)

    @staticmethod
    def create(*args: Any, **kwargs: Any) -> Workspace:
        raise unsupported("Workspace.create", "a workspace is made by the first run (or set MLTRAIN_WORKSPACE)")

    # -- what Azure code reads from a workspace ---------------------------------------------------------
    @property
    def compute_targets(self) -> dict[str, Any]:
        """The compute configs of ``conf/compute`` (mltrain's and the project's) by name."""
        from .compute import ComputeTarget, compute_names

        return {name: ComputeTarget(self, name) for name in compute_names()}

    @property
    def environments(self) -> dict[str, Any]:
        """The environment configs of ``conf/environment`` by name."""
        from .environment import Environment

        return {name: Environment.get(self, name) for name in Environment.list_names()}

    @property
    def models(self) -> dict[str, Any]:
        """The latest version of each registered model, by name."""
        from .model import Model

        latest: dict[str, Any] = {}
        for model in Model.list(self):
            if model.name not in latest or model.version > latest[model.name].version:
                latest[model.name] = model
        return latest

    @property
    def webservices(self) -> dict[str, Any]:
        """The endpoints, by name."""
        from .webservice import Webservice

        return {ep.name: Webservice(self, ep.name) for ep in self._ws.endpoints()}

    @property
    def experiments(self) -> dict[str, Any]:
        from .experiment import Experiment

        return {e["name"]: Experiment(self, e["name"]) for e in self._ws.experiments()}

    def get_details(self) -> dict[str, Any]:
        return {"name": self.name, "location": str(self._ws.path), "workspace": "mltrain"}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise unsupported(
            f"Workspace.{name}", "supported: from_config, get, compute_targets, environments, models, webservices"
        )

    def __repr__(self) -> str:
        return f"Workspace.create(name={self.name!r}, location={str(self._ws.path)!r})"
