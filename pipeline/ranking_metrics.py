"""NDCG in plain numpy: an independent check of the model's TF-Ranking metrics.

Gain ``2^rel - 1``, discount ``log2(rank + 1)``. Lists without any relevant
document are skipped: no ordering can do better or worse on them. (TF-Ranking's
Keras metrics count them as 0 instead, so its NDCG equals this one times the
fraction of lists that have a relevant document.)
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def dcg_at_k(labels_in_rank_order: np.ndarray, k: int) -> float:
    labels = np.asarray(labels_in_rank_order, dtype=np.float64)[:k]
    discounts = np.log2(np.arange(2, labels.size + 2))
    return float(np.sum((2.0**labels - 1.0) / discounts))


def ndcg_at_k(labels: np.ndarray, scores: np.ndarray, k: int = 10) -> float | None:
    """NDCG@k of one list; None when the list has no relevant document.

    Ties in ``scores`` are broken by original order (stable sort), so callers
    that want a tie-free estimate should add tiny noise.
    """
    labels = np.asarray(labels, dtype=np.float64)
    ideal = dcg_at_k(np.sort(labels)[::-1], k)
    if ideal <= 0:
        return None
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return dcg_at_k(labels[order], k) / ideal


def mean_ndcg(lists: Iterable[tuple[np.ndarray, np.ndarray]], k: int = 10) -> float:
    """Mean NDCG@k over (labels, scores) pairs, skipping lists without relevant documents."""
    values = [v for labels, scores in lists if (v := ndcg_at_k(labels, scores, k)) is not None]
    if not values:
        raise ValueError("no list has a relevant document")
    return float(np.mean(values))


def random_ndcg(lists: list[np.ndarray], k: int = 10, repeats: int = 20, seed: int = 0) -> float:
    """Expected NDCG@k of a random ordering, estimated over ``repeats`` shuffles."""
    rng = np.random.default_rng(seed)
    return float(
        np.mean([mean_ndcg(((labels, rng.random(labels.size)) for labels in lists), k) for _ in range(repeats)])
    )
