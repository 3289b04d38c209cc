"""A model version as ``mltrain models list|show --json`` and ``GET /api/models/...`` give it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mltrain.workspace import Workspace
    from mltrain.workspace.models import ModelVersion

ENVIRONMENT_FIELDS = ("name", "version", "builder", "hash", "python")


def model_version_json(mv: ModelVersion) -> dict[str, Any]:
    """The version's fields (files and aliases as lists) and whether loading it runs code from the file."""
    from mltrain.registry.formats import is_code_executing

    data = mv.to_dict()
    data.pop("id", None)
    data["code_executing"] = is_code_executing(mv.format)
    return data


def lineage(ws: Workspace, run_id: str | None) -> dict[str, Any] | None:
    """The run a version was registered from: experiment, status, its last ``metrics``, environment,
    snapshot, git commit and the ``data`` it read; None without one (or when it is gone)."""
    from mltrain.errors import NotFoundError
    from mltrain.views.runs import run_data

    if not run_id:
        return None
    try:
        run = ws.runs.get(run_id)
    except NotFoundError:
        return None
    return {
        "run": run.id,
        "experiment": run.experiment,
        "status": run.status,
        "metrics": ws.metrics.summary(run.id),
        "environment": run.env_name,
        "environment_hash": run.env_hash,
        "snapshot": run.snapshot_id,
        "git_commit": run.git_commit,
        "data": run_data(ws, run.id)["inputs"],
    }


def model_detail(ws: Workspace, mv: ModelVersion) -> dict[str, Any]:
    """One version: its fields, ``size``, ``lineage``, the latest scalars of its run (``run_metrics``),
    the ``environment`` it was trained in, the ``endpoints`` serving it (state as recorded) and every
    version number of the model (``versions``)."""
    from mltrain.workspace.run_pages import latest_scalars

    item = model_version_json(mv)
    item["size"] = sum(int(f.size) for f in mv.files)
    item["lineage"] = found = lineage(ws, mv.run_id)
    item["run_metrics"] = latest_scalars(ws.db, [found["run"]])[found["run"]] if found else {}
    env_hash = mv.env_hash or (found or {}).get("environment_hash")
    envs = ws.environments.list(env_hash) if env_hash else []
    item["environment"] = {k: envs[0][k] for k in ENVIRONMENT_FIELDS} if envs else None
    item["endpoints"] = [
        {"name": e.name, "target": e.target, "state": e.state}
        for e in ws.endpoints.list()
        if e.model_name == mv.name and e.model_version == mv.version
    ]
    item["versions"] = sorted(v.version for v in ws.models.list(mv.name, include_archived=True))
    return item
