"""Early termination of sweep children from their live primary-metric curves (HyperDrive's policies).

A curve is the list of values a child has logged for the primary metric so far; "step" k is its
k-th report. A policy evaluates a running child at every k with ``k >= delay_evaluation`` and
``k % evaluation_interval == 0``, against the other children (running or finished) that reported
at least k values, and names the children to stop. Evaluations are repeated on every poll, so a
child is compared as soon as its peers have reported enough.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

from mltrain.errors import ConfigError
from mltrain.runs.sweep.settings import EarlyTerminationConfig

POLICIES = ("bandit", "median_stopping", "truncation_selection")
EARLY_TERMINATION = "early termination"


class Policy:
    """Base: which steps are evaluated; subclasses say whether a child is stopped at step k."""

    def __init__(self, settings: EarlyTerminationConfig, maximize: bool) -> None:
        self.interval = max(1, int(settings.evaluation_interval or 1))
        self.delay = max(0, int(settings.delay_evaluation or 0))
        self.maximize = maximize

    def better(self, a: float, b: float) -> bool:
        return a > b if self.maximize else a < b

    def to_stop(self, curves: Mapping[str, list[float]], running: set[str]) -> list[str]:
        """The running children (keys of ``curves``) to stop now."""
        out = []
        for key in running:
            curve = curves.get(key) or []
            for k in range(len(curve), 0, -1):
                if k >= max(1, self.delay) and k % self.interval == 0:
                    peers = [c for other, c in curves.items() if other != key and len(c) >= k]
                    if peers and self.stop_at(k, curve, peers):
                        out.append(key)
                    break  # the latest evaluation point decides
        return out

    def stop_at(self, k: int, curve: list[float], peers: list[list[float]]) -> bool:
        raise NotImplementedError


class Bandit(Policy):
    """Stop a child whose value at step k is not within the slack of the best value at step k."""

    def __init__(self, settings: EarlyTerminationConfig, maximize: bool) -> None:
        super().__init__(settings, maximize)
        self.factor, self.amount = settings.slack_factor, settings.slack_amount
        if (self.factor is None) == (self.amount is None):
            raise ConfigError(
                "the bandit policy needs exactly one of sweep.early_termination.slack_factor and slack_amount",
                hint="e.g. sweep.early_termination.slack_factor=0.1",
            )

    def stop_at(self, k: int, curve: list[float], peers: list[list[float]]) -> bool:
        values = [c[k - 1] for c in peers] + [curve[k - 1]]
        best = max(values) if self.maximize else min(values)
        if self.factor is not None:
            limit = best / (1 + float(self.factor)) if self.maximize else best * (1 + float(self.factor))
        else:
            limit = best - float(self.amount) if self.maximize else best + float(self.amount)
        return self.better(limit, curve[k - 1])


class MedianStopping(Policy):
    """Stop a child whose best value up to step k is worse than the median of the running averages
    (up to step k) of the other children."""

    def stop_at(self, k: int, curve: list[float], peers: list[list[float]]) -> bool:
        median = statistics.median(statistics.fmean(c[:k]) for c in peers)
        best = max(curve[:k]) if self.maximize else min(curve[:k])
        return self.better(median, best)


class TruncationSelection(Policy):
    """At step k, stop a child that is among the lowest ``truncation_percentage`` percent of all
    children that reached step k."""

    def __init__(self, settings: EarlyTerminationConfig, maximize: bool) -> None:
        super().__init__(settings, maximize)
        self.percent = int(settings.truncation_percentage or 0)
        if not 1 <= self.percent <= 99:
            raise ConfigError(
                f"sweep.early_termination.truncation_percentage={self.percent} must be between 1 and 99",
                hint="e.g. 20 stops the worst fifth at each evaluation",
            )

    def stop_at(self, k: int, curve: list[float], peers: list[list[float]]) -> bool:
        count = (len(peers) + 1) * self.percent // 100
        if count < 1:
            return False
        mine = curve[k - 1]
        worse_or_equal_peers = sum(1 for c in peers if not self.better(c[k - 1], mine))
        rank_from_bottom = len(peers) - worse_or_equal_peers  # peers strictly better than this child
        return rank_from_bottom >= len(peers) + 1 - count


def make_policy(settings: EarlyTerminationConfig, maximize: bool) -> Policy | None:
    """The policy of ``sweep.early_termination`` (None when there is none)."""
    name = settings.policy
    if not name:
        return None
    classes = {"bandit": Bandit, "median_stopping": MedianStopping, "truncation_selection": TruncationSelection}
    if name not in classes:
        raise ConfigError(
            f"sweep.early_termination.policy={name!r} is not a policy", hint=f"use one of: {', '.join(POLICIES)}"
        )
    return classes[name](settings, maximize)
