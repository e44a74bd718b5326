"""Deterministic sample ranking logs: the embedded default data set.

Flat CSV rows, one per (query, document), as a warehouse export would give
them, in span folders ``span-<N>/logs.csv``. Features have mixed scales
(counts, prices, ratios, a signed change) so that log1p matters, some values
are missing (empty cells), list lengths vary, and the graded label (0-4) comes
from a hidden relevance function plus noise. The noise-free relevance is
written to ``oracle/span-<N>.csv`` so tests can compute the oracle NDCG.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

COLUMNS = (
    "query_id",
    "doc_id",
    "position",
    "query_length",
    "user_tenure_days",
    "price",
    "price_change_7d",
    "num_reviews",
    "rating",
    "ctr_7d",
    "text_match",
    "label",
)
ORACLE_COLUMNS = ("query_id", "doc_id", "relevance", "label")
# Label thresholds on the noisy relevance (about 45/25/15/10/5 % of documents).
LABEL_QUANTILES = (0.45, 0.70, 0.85, 0.95)
NOISE = 0.35


@dataclasses.dataclass(frozen=True)
class SampleSpec:
    spans: int = 2
    queries: int = 400  # per span
    min_docs: int = 4
    max_docs: int = 30
    seed: int = 7


def hidden_relevance(cols: dict[str, np.ndarray]) -> np.ndarray:
    """The generator's true relevance from the complete (pre-missing) features."""
    reviews_weight = np.minimum(1.0, np.log1p(cols["num_reviews"]) / 5.0)
    tenure_weight = 1.0 - np.minimum(1.0, np.log1p(cols["user_tenure_days"]) / 8.0)
    return (
        np.log1p(cols["text_match"]) * (0.5 + 0.3 * np.log1p(cols["query_length"]))
        + 0.6 * (cols["rating"] - 3.0) * reviews_weight
        + 6.0 * cols["ctr_7d"]
        - 0.35 * np.log1p(cols["price"]) * tenure_weight
        - 0.3 * np.tanh(cols["price_change_7d"] / 50.0)
    )


def _span_columns(rng: np.random.Generator, span: int, spec: SampleSpec) -> dict[str, np.ndarray]:
    sizes = rng.integers(spec.min_docs, spec.max_docs + 1, size=spec.queries)
    n = int(sizes.sum())
    query_index = np.repeat(np.arange(spec.queries), sizes)
    query_length = rng.integers(1, 9, size=spec.queries)[query_index]
    tenure = np.floor(rng.lognormal(4.5, 1.5, size=spec.queries))[query_index]
    num_reviews = np.floor(rng.pareto(1.2, size=n) * 20)
    return {
        "query_id": np.array([f"s{span}-q{q:05d}" for q in query_index]),
        "doc_id": np.array([f"d{d:07d}" for d in rng.integers(0, 10**7, size=n)]),
        "position": np.concatenate([rng.permutation(s) for s in sizes]),
        "query_length": query_length.astype(np.float64),
        "user_tenure_days": tenure,
        "price": np.round(rng.lognormal(3.5, 1.2, size=n), 2),
        "price_change_7d": np.round(rng.normal(0, 30, size=n), 2),
        "num_reviews": num_reviews,
        "rating": np.round(np.clip(rng.normal(3.8, 0.8, size=n), 1.0, 5.0), 1),
        "ctr_7d": np.round(rng.beta(1.2, 20, size=n), 4),
        "text_match": np.round(rng.gamma(2.0, 3.0, size=n), 3),
        "_query_index": query_index,
    }


def _labels(rng: np.random.Generator, relevance: np.ndarray) -> np.ndarray:
    noisy = relevance + rng.normal(0, NOISE, size=relevance.size)
    return np.digitize(noisy, np.quantile(noisy, LABEL_QUANTILES)).astype(np.int64)


def _missing_masks(rng: np.random.Generator, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = cols["price"].size
    query_index = cols["_query_index"]
    return {
        # Context features are missing for a whole list, never for a single row.
        "user_tenure_days": (rng.random(query_index.max() + 1) < 0.10)[query_index],
        "num_reviews": rng.random(n) < 0.05,
        "rating": (cols["num_reviews"] == 0) | (rng.random(n) < 0.05),
        "price_change_7d": rng.random(n) < 0.05,
        "ctr_7d": rng.random(n) < 0.03,
    }


def _format(value: float | str, integer: bool) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if integer else repr(float(value))


_INTEGER_COLUMNS = {"position", "query_length", "user_tenure_days", "num_reviews", "label"}


def write_span(root: Path, span: int, spec: SampleSpec) -> int:
    """Writes one span's logs and oracle; returns the number of rows."""
    rng = np.random.default_rng([spec.seed, span])
    cols = _span_columns(rng, span, spec)
    relevance = hidden_relevance(cols)
    cols["label"] = _labels(rng, relevance)
    missing = _missing_masks(rng, cols)

    span_dir = root / f"span-{span}"
    span_dir.mkdir(parents=True, exist_ok=True)
    n = relevance.size
    with open(span_dir / "logs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for i in range(n):
            writer.writerow(
                "" if name in missing and missing[name][i] else _format(cols[name][i], name in _INTEGER_COLUMNS)
                for name in COLUMNS
            )
    oracle_dir = root / "oracle"
    oracle_dir.mkdir(parents=True, exist_ok=True)
    with open(oracle_dir / f"span-{span}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(ORACLE_COLUMNS)
        for i in range(n):
            writer.writerow((cols["query_id"][i], cols["doc_id"][i], repr(float(relevance[i])), int(cols["label"][i])))
    return n


def write_sample_data(root: str | Path, spec: SampleSpec | None = None) -> int:
    """Writes spans 1..spec.spans under ``root``; returns the total number of rows."""
    spec = spec or SampleSpec()
    root = Path(root)
    return sum(write_span(root, span, spec) for span in range(1, spec.spans + 1))


def read_oracle(root: str | Path, span: int) -> dict[str, tuple[list[float], list[int]]]:
    """query_id -> (hidden relevances, labels) of the span's documents."""
    lists: dict[str, tuple[list[float], list[int]]] = {}
    with open(Path(root) / "oracle" / f"span-{span}.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            relevances, labels = lists.setdefault(row["query_id"], ([], []))
            relevances.append(float(row["relevance"]))
            labels.append(int(row["label"]))
    return lists
