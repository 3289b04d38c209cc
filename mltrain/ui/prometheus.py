"""Reading an endpoint's Prometheus ``/metrics`` into the few figures the dashboard shows."""

from __future__ import annotations

import re
from typing import Any

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text exposition: (name, labels, value); malformed lines are skipped."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), value))
    return out


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the histogram bucket holding quantile ``q`` (buckets: (le, cumulative count))."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    for le, count in buckets:
        if count >= rank:
            return le if le != float("inf") else None
    return None


def summarize(text: str) -> dict[str, Any]:
    """Totals of an endpoint's metrics: requests (all, /score, errors), latency of /score (sum, count,
    mean and bucket estimates of p50/p99, seconds), predictions."""
    requests = score = errors = predictions = 0.0
    lat_sum = lat_count = 0.0
    buckets: dict[float, float] = {}
    for name, labels, value in parse(text):
        if name == "mltrain_requests_total":
            requests += value
            if labels.get("path") == "/score":
                score += value
        elif name == "mltrain_errors_total":
            errors += value
        elif name == "mltrain_predictions_total":
            predictions += value
        elif labels.get("path") == "/score":
            if name == "mltrain_request_duration_seconds_sum":
                lat_sum += value
            elif name == "mltrain_request_duration_seconds_count":
                lat_count += value
            elif name == "mltrain_request_duration_seconds_bucket":
                le = float(labels.get("le", "inf").replace("+Inf", "inf"))
                buckets[le] = buckets.get(le, 0.0) + value
    pairs = list(buckets.items())
    return {
        "requests_total": requests,
        "score_requests_total": score,
        "errors_total": errors,
        "predictions_total": predictions,
        "latency_mean_s": lat_sum / lat_count if lat_count else None,
        "latency_sum_s": lat_sum,  # the totals: two readings give the mean latency between them
        "latency_count": lat_count,
        "latency_p50_s": _quantile(pairs, 0.5),
        "latency_p99_s": _quantile(pairs, 0.99),
    }
