"""A sweep's children as ``mltrain runs show SWEEP`` lists them: sorted by the primary metric."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mltrain.runs.sweep.progress import rank
from mltrain.runs.sweep.tags import SWEEP_TAG, TRIAL_TAG

if TYPE_CHECKING:
    from mltrain.workspace import Workspace


def sweep_children(ws: Workspace, run_id: str) -> tuple[str | None, list[dict[str, Any]]] | None:
    """(primary metric, children best first: id, trial, status, value, overrides, error), or None
    when ``run_id`` is not a sweep."""
    tags = ws.runs.tags(run_id)
    if tags.get(SWEEP_TAG) != "parent":
        return None
    metric = tags.get("mltrain.sweep.primary_metric") or None
    maximize = tags.get("mltrain.sweep.goal", "maximize") == "maximize"
    rows = []
    for child in ws.runs.list(parent_run_id=run_id, limit=None):
        value = ws.metrics.summary(child["id"]).get(metric) if metric else None
        child_tags = ws.runs.tags(child["id"])
        rows.append(
            {
                "id": child["id"],
                "trial": int(child_tags.get(TRIAL_TAG, -1)),
                "status": child["status"],
                "value": value if isinstance(value, (int, float)) and not isinstance(value, bool) else None,
                "arguments": " ".join(child["arguments"] or []),
                "error": child["error"],
            }
        )
    rows.sort(key=lambda r: r["trial"])
    return metric, rank(rows, lambda r: r["value"], maximize)
