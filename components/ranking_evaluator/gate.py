"""The blessing decision, as pure logic so the rule is tested on its own.

A candidate is blessed when, on the same lists:
1. it beats a trivial ranker (the logged order where documents have a position,
   otherwise a random order) by at least ``min_lift``: it learned something;
2. it is no worse than the baseline (the version the registry serves) by more than
   ``max_regression``: it does not make serving worse;
3. optionally, it reaches the absolute ``min_value`` (off by default: what a good
   NDCG is depends on the data set, so an absolute floor is a per-data-set choice).
"""

from __future__ import annotations

import dataclasses

from modules.ranking_metrics import METRIC_NAMES


@dataclasses.dataclass(frozen=True)
class Gate:
    metric: str = "ndcg_10"
    max_regression: float = 0.01  # how far below the baseline the candidate may fall
    min_lift: float = 0.01  # how far above the trivial ranker the candidate must be
    min_value: float | None = None  # optional absolute floor

    def __post_init__(self):
        if self.metric not in METRIC_NAMES:
            raise ValueError(f"gate metric '{self.metric}' is not one of {', '.join(METRIC_NAMES)}")
        if self.max_regression < 0:
            raise ValueError(f"max_regression must be >= 0, got {self.max_regression}")


@dataclasses.dataclass(frozen=True)
class Judgement:
    blessed: bool
    reason: str


def judge(
    candidate: dict[str, float],
    baseline: dict[str, float] | None,
    gate: Gate,
    trivial: dict[str, float] | None = None,
    trivial_name: str = "trivial ranker",
) -> Judgement:
    """Blesses ``candidate`` or not under ``gate``; the reason names every check either way."""
    metric = gate.metric
    value = candidate[metric]
    failures, passed = [], []
    if trivial is not None:
        floor = trivial[metric] + gate.min_lift
        check = f"{trivial_name}'s {trivial[metric]:.4f} + min_lift {gate.min_lift:.4f}"
        (passed if value >= floor else failures).append(
            f"{metric} {value:.4f} {'>=' if value >= floor else 'is below'} {check}"
        )
    if baseline is not None:
        floor = baseline[metric] - gate.max_regression
        check = f"the serving model's {baseline[metric]:.4f} - max_regression {gate.max_regression:.4f}"
        (passed if value >= floor else failures).append(
            f"{metric} {value:.4f} {'>=' if value >= floor else 'is below'} {check}"
        )
    else:
        passed.append("no serving model to compare with (first registration)")
    if gate.min_value is not None:
        ok = value >= gate.min_value
        (passed if ok else failures).append(
            f"{metric} {value:.4f} {'>=' if ok else 'is below'} min_value {gate.min_value:.4f}"
        )
    if failures:
        return Judgement(False, "; ".join(failures))
    return Judgement(True, "; ".join(passed))
