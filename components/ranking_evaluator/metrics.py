"""Ranking metrics of one evaluation pass, accumulated list by list in numpy.

NDCG uses gain ``2^rel - 1`` and discount ``log2(rank + 1)`` (``pipeline.ranking_metrics``);
MRR is the reciprocal rank of the first document with a label > 0. Lists without any
relevant document have neither metric defined: they are counted, not averaged.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.ranking_metrics import ndcg_at_k

NDCG_CUTOFFS = (1, 5, 10)
METRIC_NAMES = tuple(f"ndcg_{k}" for k in NDCG_CUTOFFS) + ("mrr",)


def reciprocal_rank(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """1 / rank of the first relevant document under ``scores``; None without relevant documents."""
    labels = np.asarray(labels, dtype=np.float64)
    if not np.any(labels > 0):
        return None
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    first = int(np.argmax(labels[order] > 0))
    return 1.0 / (first + 1)


@dataclasses.dataclass
class MetricAccumulator:
    """Sums per-list metrics so an evaluation streams over batches in constant memory."""

    sums: dict[str, float] = dataclasses.field(default_factory=lambda: dict.fromkeys(METRIC_NAMES, 0.0))
    lists: int = 0
    lists_without_relevant: int = 0
    documents: int = 0
    missing_labels: int = 0  # documents without a label, scored as label 0

    def add(self, labels: np.ndarray, scores: np.ndarray) -> None:
        labels = np.asarray(labels, dtype=np.float64)
        if labels.shape != np.shape(scores):
            raise ValueError(f"labels {labels.shape} and scores {np.shape(scores)} differ in shape")
        self.lists += 1
        self.documents += labels.size
        rr = reciprocal_rank(labels, scores)
        if rr is None:
            self.lists_without_relevant += 1
            return
        self.sums["mrr"] += rr
        for k in NDCG_CUTOFFS:
            self.sums[f"ndcg_{k}"] += ndcg_at_k(labels, scores, k)

    @property
    def scored_lists(self) -> int:
        return self.lists - self.lists_without_relevant

    def result(self) -> dict[str, float]:
        if not self.scored_lists:
            raise ValueError(f"none of the {self.lists} evaluated lists has a relevant document")
        return {name: total / self.scored_lists for name, total in self.sums.items()}
