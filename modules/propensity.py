"""Examination propensities per position, estimated from click logs by regression-EM.

The position-based click model: an item shown at position k is clicked iff it
is examined (probability ``theta_k``, position only) and judged relevant
(probability ``gamma(x)``, from its features): ``P(click) = theta_k * gamma(x)``.
Regression-EM (Wang et al., "Position Bias Estimation for Unbiased Learning to
Rank in Personal Search", WSDM 2018) fits both from clicks alone:

- E-step: for an unclicked impression, the posterior of "examined" is
  ``theta (1 - gamma) / (1 - theta gamma)`` and of "relevant" is
  ``(1 - theta) gamma / (1 - theta gamma)``; a click means both.
- M-step: ``theta_k`` is the mean posterior of "examined" at position k;
  ``gamma`` is a logistic regression on the features fitted to the posterior of
  "relevant" (soft labels; a few Newton steps), so relevance is shared across
  items with similar features instead of being one free parameter per item.

The estimates are then made non-increasing in position (pool adjacent
violators, weighted by impressions), which mostly steadies the sparse tail.
Only the ratios ``theta_k / theta_1`` are identified; they are what inverse
propensity weighting needs (``Propensities.relative``). Plain numpy: the inputs
are one row per impression (position, clicked, feature vector).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence

import numpy as np

# The file of the Propensities artifact (and of anything that hands propensities to training).
PROPENSITIES_FILE = "propensities.json"
PROPENSITIES_CSV = "propensities.csv"
# Positions above this share one propensity (the last one estimated).
MAX_POSITION = 100
# A position needs this many impressions to get its own estimate; later ones share the last.
MIN_IMPRESSIONS = 20
_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class Propensities:
    """Relative examination propensity of positions 1..len(relative) (position 1 = 1.0)."""

    relative: tuple[float, ...]
    method: str = "regression_em"
    diagnostics: dict = dataclasses.field(default_factory=dict, compare=False, hash=False)

    def of(self, positions: np.ndarray) -> np.ndarray:
        """Propensity of 1-based positions; later positions take the last one, positions < 1 get 1."""
        table = np.asarray(self.relative, np.float64)
        positions = np.asarray(positions)
        index = np.clip(positions, 1, len(table)).astype(np.int64) - 1
        return np.where(positions >= 1, table[index], 1.0)

    def weights(self, positions: np.ndarray, max_weight: float) -> np.ndarray:
        """Inverse propensity weights ``min(1 / propensity, max_weight)``."""
        return np.minimum(1.0 / np.maximum(self.of(positions), _EPS), max_weight)

    def to_json(self) -> str:
        return json.dumps(
            {
                "method": self.method,
                "positions": list(range(1, len(self.relative) + 1)),
                "propensity": list(self.relative),
                "diagnostics": self.diagnostics,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> Propensities:
        data = json.loads(text)
        positions, values = data["positions"], data["propensity"]
        if positions != list(range(1, len(positions) + 1)) or len(values) != len(positions):
            raise ValueError("propensities: 'positions' must be 1, 2, ... with one 'propensity' each")
        if not values or not all(isinstance(v, (int, float)) and 0 < v <= 1.0 + 1e-9 for v in values):
            raise ValueError("propensities: every propensity must be a number in (0, 1]")
        return cls(tuple(float(v) for v in values), data.get("method", "regression_em"), data.get("diagnostics", {}))

    def to_csv(self) -> str:
        return "position,propensity\n" + "".join(f"{k},{v!r}\n" for k, v in enumerate(self.relative, start=1))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _logistic_newton(x: np.ndarray, target: np.ndarray, w: np.ndarray, steps: int, l2: float) -> np.ndarray:
    """A few Newton steps of L2-regularised logistic regression with soft targets."""
    for _ in range(steps):
        p = _sigmoid(x @ w)
        gradient = x.T @ (p - target) + l2 * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(x.shape[1])
        w = w - np.linalg.solve(hessian, gradient)
    return w


def non_increasing(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted least-squares non-increasing fit (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, weight, length]
    for value, weight in zip(values.tolist(), np.maximum(weights, _EPS).tolist(), strict=True):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            mean2, weight2, length2 = blocks.pop()
            mean1, weight1, length1 = blocks[-1]
            total = weight1 + weight2
            blocks[-1] = [(mean1 * weight1 + mean2 * weight2) / total, total, length1 + length2]
    return np.concatenate([np.full(length, mean) for mean, _, length in blocks])


def design_matrix(features: np.ndarray) -> np.ndarray:
    """Features -> standardized signed log1p values and their squares, plus an intercept; NaN -> column mean."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be [impressions, features], got shape {x.shape}")
    x = np.sign(x) * np.log1p(np.abs(x))
    means = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0) if x.size else np.zeros(x.shape[1])
    means = np.where(np.isfinite(means), means, 0.0)
    x = np.where(np.isfinite(x), x, means)
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return np.hstack([np.ones((x.shape[0], 1)), x, x**2])


def estimate(
    positions: Sequence[int] | np.ndarray,
    clicks: Sequence[bool] | np.ndarray,
    features: np.ndarray,
    iterations: int = 400,
    tolerance: float = 1e-4,
    l2: float = 1.0,
) -> Propensities:
    """Regression-EM over impressions (1-based position, clicked?, feature row).

    Positions beyond the last one with ``MIN_IMPRESSIONS`` impressions (or beyond
    ``MAX_POSITION``) are pooled with it. Impressions with no position (< 1) are left out.
    """
    positions = np.asarray(positions, np.int64)
    clicks = np.asarray(clicks, np.float64)
    features = np.asarray(features, np.float64)
    if not (positions.shape == clicks.shape == features.shape[:1]):
        raise ValueError("positions, clicks and features need one row per impression")
    known = positions >= 1
    positions, clicks, features = positions[known], clicks[known], features[known]
    if positions.size == 0 or clicks.sum() == 0:
        raise ValueError(
            f"cannot estimate propensities: {positions.size} impressions with a position, {int(clicks.sum())} clicks"
        )
    counts = np.bincount(np.minimum(positions, MAX_POSITION))
    enough = np.flatnonzero(counts >= MIN_IMPRESSIONS)
    last = int(enough.max()) if enough.size else 1
    slot = np.minimum(positions, last) - 1  # 0-based estimate index

    x = design_matrix(features)
    theta = np.full(last, 0.5)
    w = np.zeros(x.shape[1])
    w[0] = math.log(max(clicks.mean(), _EPS) / 0.5)  # start: half of the impressions examined
    gamma = _sigmoid(x @ w)
    history = []
    converged = False
    for _ in range(iterations):
        t = theta[slot]
        unclicked = 1.0 - t * gamma
        examined = clicks + (1 - clicks) * t * (1 - gamma) / np.maximum(unclicked, _EPS)
        relevant = clicks + (1 - clicks) * (1 - t) * gamma / np.maximum(unclicked, _EPS)
        new_theta = np.bincount(slot, weights=examined, minlength=last) / np.maximum(
            np.bincount(slot, minlength=last), 1
        )
        w = _logistic_newton(x, relevant, w, steps=1, l2=l2)
        gamma = _sigmoid(x @ w)
        p = np.clip(new_theta[slot] * gamma, _EPS, 1 - _EPS)
        history.append(float(np.mean(clicks * np.log(p) + (1 - clicks) * np.log(1 - p))))
        change = float(np.max(np.abs(new_theta - theta)))
        theta = np.clip(new_theta, _EPS, 1.0)
        if change < tolerance:
            converged = True
            break
    impressions = np.bincount(slot, minlength=last)
    # Examination does not grow down the page: pool the noisy tail (weighted by impressions).
    smooth = non_increasing(theta, impressions)
    relative = np.clip(smooth / smooth[0], _EPS, 1.0)
    diagnostics = {
        "impressions": int(positions.size),
        "clicks": int(clicks.sum()),
        "positions_estimated": last,
        "impressions_per_position": [int(c) for c in impressions],
        "raw_relative": [float(v) for v in theta / theta[0]],
        "clicks_per_position": [int(c) for c in np.bincount(slot, weights=clicks, minlength=last)],
        "examination_at_position_1": float(theta[0]),
        "iterations": len(history),
        "converged": converged,
        "log_likelihood": history[-1],
        "log_likelihood_history": history,
    }
    return Propensities(tuple(float(v) for v in relative), "regression_em", diagnostics)
