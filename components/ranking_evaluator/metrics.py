"""Per-list metrics of every ranker on one split, and what is computed from them:
overall means, slices, and a paired bootstrap interval for the candidate–baseline gap.

The metric definition (full lists, gain ``2^rel - 1``, log2 discount, ties as the
expectation over their orderings, lists without a relevant document counted but not
averaged) is the pipeline's one: ``modules.ranking_metrics``. Keeping one row per list
(a few floats) lets every slice and interval come from the same scored lists.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import numpy as np

from modules.ranking_metrics import METRIC_NAMES, list_metrics

# Upper edges of the list-length buckets: 1-10, 11-30, 31-100, 101+ documents.
LIST_LENGTH_EDGES = (10, 30, 100)
MAX_SLICE_VALUES = 20  # per context feature; rarer values are pooled as "(other)"
BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0


def list_length_bucket(n: int) -> str:
    lower = 1
    for edge in LIST_LENGTH_EDGES:
        if n <= edge:
            return f"{lower}-{edge}"
        lower = edge + 1
    return f"{lower}+"


def bootstrap_interval(
    differences: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of paired per-list differences."""
    differences = np.asarray(differences, dtype=np.float64)
    if differences.size == 0:
        raise ValueError("no lists to bootstrap")
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    for start in range(0, samples, 100):  # chunks bound memory on large splits
        stop = min(samples, start + 100)
        picks = rng.integers(0, differences.size, size=(stop - start, differences.size))
        means[start:stop] = differences[picks].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


@dataclasses.dataclass
class ListTable:
    """One row per evaluated list: each ranker's metrics (NaN without relevant documents)."""

    rankers: tuple[str, ...]
    slice_features: tuple[str, ...] = ()
    lengths: list[int] = dataclasses.field(default_factory=list)
    values: dict[str, list[list[float]]] = dataclasses.field(default_factory=dict)
    context: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    missing_labels: int = 0  # documents without a label, scored as label 0

    def add(
        self,
        labels: np.ndarray,
        scores: dict[str, np.ndarray],
        context: dict[str, Any],
        missing: int = 0,
        weights: np.ndarray | None = None,
    ):
        """One list; ``weights``: per-document gain weights, applied to every ranker alike."""
        labels = np.asarray(labels, dtype=np.float64)
        self.lengths.append(int(labels.size))
        self.missing_labels += missing
        for ranker in self.rankers:
            metrics = list_metrics(labels, scores[ranker], weights)
            row = [np.nan] * len(METRIC_NAMES) if metrics is None else [metrics[m] for m in METRIC_NAMES]
            self.values.setdefault(ranker, []).append(row)
        for name in self.slice_features:
            self.context.setdefault(name, []).append(context.get(name))

    @property
    def lists(self) -> int:
        return len(self.lengths)

    def matrix(self, ranker: str) -> np.ndarray:
        return np.asarray(self.values.get(ranker, []), dtype=np.float64).reshape(-1, len(METRIC_NAMES))

    def scored(self) -> np.ndarray:
        """Lists with a relevant document (the same for every ranker: it depends on labels only)."""
        return ~np.isnan(self.matrix(self.rankers[0])[:, 0])

    def summary(self, ranker: str, rows: np.ndarray | None = None) -> dict[str, Any]:
        """Metrics of ``ranker`` over ``rows`` (default all lists), with the list counts."""
        rows = np.ones(self.lists, dtype=bool) if rows is None else rows
        scored = rows & self.scored()
        if not scored.any():
            raise ValueError(f"none of the {int(rows.sum())} evaluated lists has a relevant document")
        means = self.matrix(ranker)[scored].mean(axis=0)
        return {
            "metrics": {name: float(v) for name, v in zip(METRIC_NAMES, means, strict=True)},
            "lists": int(rows.sum()),
            "lists_without_relevant": int((rows & ~self.scored()).sum()),
            "documents": int(np.asarray(self.lengths)[rows].sum()),
        }

    def difference(self, metric: str, a: str, b: str, rows: np.ndarray | None = None) -> dict[str, Any] | None:
        """Mean per-list ``a - b`` on ``metric`` with a paired bootstrap 95% interval."""
        rows = np.ones(self.lists, dtype=bool) if rows is None else rows
        scored = rows & self.scored()
        if b not in self.values or not scored.any():
            return None
        column = METRIC_NAMES.index(metric)
        gaps = self.matrix(a)[scored, column] - self.matrix(b)[scored, column]
        low, high = bootstrap_interval(gaps)
        return {"metric": metric, "of": a, "minus": b, "mean": float(gaps.mean()), "ci95": [low, high]}

    def slices(self, metric: str, candidate: str, baseline: str, span: int | None = None) -> list[dict[str, Any]]:
        """Metrics per list-length bucket, per span and per value of each slice feature."""
        groups: list[tuple[str, str, np.ndarray]] = []
        buckets = np.asarray([list_length_bucket(n) for n in self.lengths])
        for bucket in sorted(set(buckets.tolist()), key=lambda b: int(b.split("-")[0].rstrip("+"))):
            groups.append(("list_length", bucket, buckets == bucket))
        if span is not None:
            groups.append(("span", str(span), np.ones(self.lists, dtype=bool)))
        for name in self.slice_features:
            values = np.asarray(["(missing)" if v is None else _label(v) for v in self.context[name]], dtype=object)
            counts = collections.Counter(values.tolist())
            common = [v for v, _ in counts.most_common(MAX_SLICE_VALUES)]
            for value in sorted(common):
                groups.append((name, value, values == value))
            rest = ~np.isin(values, common)
            if rest.any():
                groups.append((name, "(other)", rest))
        result = []
        for name, value, rows in groups:
            scored = rows & self.scored()
            entry: dict[str, Any] = {
                "slice": name,
                "value": value,
                "lists": int(rows.sum()),
                "lists_without_relevant": int((rows & ~self.scored()).sum()),
                "candidate": None,
                "baseline": None,
                "difference": None,
            }
            if scored.any():
                entry["candidate"] = self.summary(candidate, rows)["metrics"]
                if baseline in self.values:
                    entry["baseline"] = self.summary(baseline, rows)["metrics"]
                    entry["difference"] = self.difference(metric, candidate, baseline, rows)
            result.append(entry)
        return result


def _label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
