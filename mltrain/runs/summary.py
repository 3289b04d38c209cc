"""The short summary printed when a run ends."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from mltrain.text import LINES, escape_controls

if TYPE_CHECKING:
    from mltrain.runs.result import RunResult


def format_seconds(seconds: float) -> str:
    """A duration as the summary and ``mltrain runs`` show it: ``5.3s``, ``2m05s``, ``1h02m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        text = str(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return str(value)


def print_summary(result: RunResult) -> None:
    """Run id, status, duration, metrics, registered models, where the outputs are; what the script
    stored (metric names and values, its error) with control characters escaped."""
    from mltrain.registry.formats import TRUST_NOTE, is_code_executing

    lines = [
        "",
        f"Run {result.run_id}: {result.status} in {format_seconds(result.duration_s)} "
        f"(experiment {result.experiment}, compute {result.compute})",
    ]
    if result.error:
        lines.append("  error:   " + result.error.replace("\n", "\n           "))
    if result.metrics:
        shown = [escape_controls(f"{k}={format_value(v)}") for k, v in list(result.metrics.items())[:12]]
        lines.append("  metrics: " + "  ".join(shown))
    for mv in result.models:
        framework = f" ({mv.framework} {mv.framework_version})" if mv.framework else ""
        lines.append(f"  model:   {mv.name} version {mv.version}{framework}")
        if is_code_executing(mv.format):
            lines.append("  note:    " + TRUST_NOTE.format(ref=mv.ref, fmt=mv.format))
    if result.endpoint:
        lines.append(f"  endpoint: {result.endpoint.get('name')} at {result.endpoint.get('uri')}")
        for slot, key in (result.endpoint.get("keys") or {}).items():
            lines.append(f"  {slot} key: {key}  (shown only now; `mltrain endpoints keys` makes new ones)")
    lines.append(f"  outputs: {result.run_dir / 'outputs'}")
    lines.append(f"  details: mltrain runs show {result.run_id}")
    for problem in result.problems:
        lines.append("  problem: " + problem.replace("\n", "\n           "))
    text = escape_controls("\n".join(lines), LINES)
    print(text, file=sys.stdout if result.status == "Completed" and not result.problems else sys.stderr)
