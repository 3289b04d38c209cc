"""The short summary printed when a run ends."""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

from mltrain.text import LINES, escape_controls

if TYPE_CHECKING:
    from mltrain.runs.result import RunResult

SUMMARY_METRICS = 12  # shown in the summary; `mltrain runs show` lists them all


def format_seconds(seconds: float) -> str:
    """A duration as the summary and ``mltrain runs`` show it: ``5.3s``, ``2m05s``, ``1h02m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def format_number(value: float) -> str:
    """A float as people read it: integral values as integers (34999), short ones as they are
    (0.25, 1e-05), longer ones to 4 significant digits, or one decimal, without an exponent
    (0.9778, 123.5, 1234567.9, 0.3), except for tiny ones (1.235e-09)."""
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    text = repr(value)
    if len(text) <= 8:
        return text
    if not 1e-4 <= abs(value) < 1e16:
        return f"{value:.4g}"
    digits = math.floor(math.log10(abs(value))) + 1  # before the point
    fixed = f"{value:.{max(1, 4 - digits)}f}".rstrip("0")
    return fixed + "0" if fixed.endswith(".") else fixed


def format_value(value: Any) -> str:
    """A metric value as the summary and ``mltrain runs`` print it (one formatter for all)."""
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, (list, dict)):
        text = str(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return str(value)


def metrics_line(metrics: dict[str, Any], params: list[str]) -> str:
    """The summary's metrics: logged metrics before parameters (an MLflow script's params), each in
    logging order, at most SUMMARY_METRICS of them, then how many more there are."""
    given = set(params)
    keys = sorted(metrics, key=lambda k: k in given)
    shown = "  ".join(escape_controls(f"{k}={format_value(metrics[k])}") for k in keys[:SUMMARY_METRICS])
    more = len(keys) - SUMMARY_METRICS
    return shown + (f"  (and {more} more)" if more > 0 else "")


def _model_lines(result: RunResult) -> list[str]:
    """The registered models, each with a note when its format runs code on loading."""
    if not result.models:
        return []
    from mltrain.registry.formats import TRUST_NOTE, is_code_executing  # the registry's: only with models

    lines = []
    for mv in result.models:
        framework = f" ({mv.framework} {mv.framework_version})" if mv.framework else ""
        lines.append(f"  model:   {mv.name} version {mv.version}{framework}")
        if is_code_executing(mv.format):
            lines.append("  note:    " + TRUST_NOTE.format(ref=mv.ref, fmt=mv.format))
    return lines


def print_summary(result: RunResult) -> None:
    """Run id, status, duration, metrics, registered models, where the outputs are; what the script
    stored (metric names and values, its error) with control characters escaped."""
    lines = [
        "",
        f"Run {result.run_id}: {result.status} in {format_seconds(result.duration_s)} "
        f"(experiment {result.experiment}, compute {result.compute})",
    ]
    if result.node:
        lines.append(f"  ran on:  {result.node}")
    if result.error:
        lines.append("  error:   " + result.error.replace("\n", "\n           "))
    if result.metrics:
        lines.append("  metrics: " + metrics_line(result.metrics, result.params))
    lines += _model_lines(result)
    if result.endpoint:
        lines.append(f"  endpoint: {result.endpoint.get('name')} at {result.endpoint.get('uri')}")
        for slot, key in (result.endpoint.get("keys") or {}).items():
            lines.append(f"  {slot} key: {key}  (shown only now; `mltrain endpoints keys` makes new ones)")
    if (result.run_dir / "outputs").is_dir():  # only when the script wrote some
        lines.append(f"  outputs: {result.run_dir / 'outputs'}")
    lines.append(f"  details: mltrain runs show {result.run_id}")
    for problem in result.problems:
        lines.append("  problem: " + problem.replace("\n", "\n           "))
    text = escape_controls("\n".join(lines), LINES)
    print(text, file=sys.stdout if result.status == "Completed" and not result.problems else sys.stderr)
