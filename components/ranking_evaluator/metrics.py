"""Ranking metrics of one evaluation pass, accumulated list by list.

The definition (full lists, gain ``2^rel - 1``, log2 discount, ties as the expectation
over their orderings, lists without a relevant document counted but not averaged) is
the pipeline's one: ``modules.ranking_metrics``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from modules.ranking_metrics import METRIC_NAMES, list_metrics


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
        values = list_metrics(labels, scores)
        if values is None:
            self.lists_without_relevant += 1
            return
        for name, value in values.items():
            self.sums[name] += value

    @property
    def scored_lists(self) -> int:
        return self.lists - self.lists_without_relevant

    def result(self) -> dict[str, float]:
        if not self.scored_lists:
            raise ValueError(f"none of the {self.lists} evaluated lists has a relevant document")
        return {name: total / self.scored_lists for name, total in self.sums.items()}
