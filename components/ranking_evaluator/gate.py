"""The blessing decision: an absolute floor, and no regression against the baseline.

Pure logic, separate from the executor, so the rule is tested on its own.
"""

from __future__ import annotations

import dataclasses

from components.ranking_evaluator.metrics import METRIC_NAMES


@dataclasses.dataclass(frozen=True)
class Gate:
    metric: str = "ndcg_10"
    min_value: float = 0.0
    max_regression: float = 0.0  # how far below the baseline the candidate may fall

    def __post_init__(self):
        if self.metric not in METRIC_NAMES:
            raise ValueError(f"gate metric '{self.metric}' is not one of {', '.join(METRIC_NAMES)}")
        if self.max_regression < 0:
            raise ValueError(f"max_regression must be >= 0, got {self.max_regression}")


@dataclasses.dataclass(frozen=True)
class Judgement:
    blessed: bool
    reason: str


def judge(candidate: dict[str, float], baseline: dict[str, float] | None, gate: Gate) -> Judgement:
    """Blesses ``candidate`` if it clears ``gate.min_value`` and, given a baseline, is not
    worse than it by more than ``gate.max_regression``. The reason is given either way."""
    value = candidate[gate.metric]
    failures = []
    if value < gate.min_value:
        failures.append(f"{gate.metric} {value:.4f} is below the threshold {gate.min_value:.4f}")
    if baseline is not None:
        floor = baseline[gate.metric] - gate.max_regression
        if value < floor:
            failures.append(
                f"{gate.metric} {value:.4f} is worse than the baseline's {baseline[gate.metric]:.4f} "
                f"by more than the tolerance {gate.max_regression:.4f}"
            )
    if failures:
        return Judgement(False, "; ".join(failures))
    against = (
        f"and within {gate.max_regression:.4f} of the baseline's {baseline[gate.metric]:.4f}"
        if baseline is not None
        else "(no baseline: first model, judged on the threshold alone)"
    )
    return Judgement(True, f"{gate.metric} {value:.4f} >= threshold {gate.min_value:.4f} {against}")
