"""A run's script arguments by name, for showing and comparing runs."""

from __future__ import annotations

from typing import Any


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def arguments_of(run: dict[str, Any]) -> dict[str, Any]:
    """The run's script arguments by name: ``job.arguments`` of its config, else ``--key value`` pairs of argv."""
    cfg = run.get("config")
    job = cfg.get("job") if isinstance(cfg, dict) else None
    if isinstance(job, dict) and isinstance(job.get("arguments"), dict):
        out: dict[str, Any] = {}
        _flatten("", job["arguments"], out)
        return out
    argv = run.get("arguments") or []
    out = {}
    i = 0
    while i < len(argv):
        item = str(argv[i])
        if item.startswith("--"):
            key, sep, value = item[2:].partition("=")
            if sep:
                out[key] = value
            elif i + 1 < len(argv) and not str(argv[i + 1]).startswith("--"):
                out[key] = argv[i + 1]
                i += 1
            else:
                out[key] = True
        i += 1
    return out
