"""Ingest of the in-script API's records (``.mltrain/metrics.jsonl``) into the workspace.

Records are fed as raw bytes (from a local file, a remote tail, ...); partial lines wait for the
rest. Metrics are written in batches; tags at once; model-registration requests are kept for the
driver, which registers them only after the run completes.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from mltrain.workspace.metrics import METRIC_KINDS

if TYPE_CHECKING:
    from mltrain.workspace import Workspace


class MetricsIngest:
    """Decodes metric records of one run and stores them."""

    def __init__(self, ws: Workspace, run_id: str) -> None:
        self.ws = ws
        self.run_id = run_id
        self._partial = b""
        self.register_requests: list[dict[str, Any]] = []

    def feed(self, data: bytes, final: bool = False) -> int:
        """Store the complete records in ``data`` (and a trailing partial one when ``final``)."""
        if not data and not (final and self._partial):
            return 0
        lines = (self._partial + data).split(b"\n")
        self._partial = b"" if final else lines.pop()
        metrics, tags, registers = parse_records(lines)
        self.register_requests += registers
        if tags:
            self.ws.runs.set_tags(self.run_id, tags)
        return self.ws.metrics.add(self.run_id, metrics)


def _decode(lines: list[bytes]) -> list[Any]:
    """Decode JSON lines: all at once when they are well formed (fast), else one by one."""
    lines = [raw for raw in lines if raw.strip()]
    if not lines:
        return []
    try:
        return json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        pass
    out = []
    for raw in lines:
        try:
            out.append(json.loads(raw))
        except ValueError:
            print(f"mltrain: skipped an unreadable metric record: {raw[:200]!r}", file=sys.stderr)
    return out


def parse_records(lines: list[bytes]) -> tuple[list[dict[str, Any]], dict[str, str], list[dict[str, Any]]]:
    """Split raw JSON lines into (metric records, tags, model-registration requests)."""
    metrics: list[dict[str, Any]] = []
    tags: dict[str, str] = {}
    registers: list[dict[str, Any]] = []
    for rec in _decode(lines):
        if not isinstance(rec, dict):
            continue
        kind = rec.get("type", "scalar")
        if kind in METRIC_KINDS:
            metrics.append(rec)
        elif kind == "tags":
            tags.update(rec.get("v") or {})
        elif kind == "register":
            registers.append(rec.get("v") or {})
    return metrics, tags, registers
