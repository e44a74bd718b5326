"""The pipeline's one definition of its ranking metrics, in plain numpy.

Every NDCG the pipeline prints (Trainer validation, Tuner objective, RankingEvaluator,
run report) is this one:

- **NDCG@k** with gain ``2^rel - 1`` and discount ``log2(rank + 1)``, over the
  **full list** (no truncation to a training list size);
- lists **without a relevant document** (every label <= 0) have no NDCG: they are
  left out of the mean and counted separately;
- **tied scores** count as the expectation over every ordering of the tied
  documents (McSherry & Najork, "Computing Information Retrieval Performance
  Measures Efficiently in the Presence of Tied Scores", ECIR 2008). Each rank a tie
  group occupies receives the group's mean gain, so a constant scorer gets exactly
  the NDCG of a random ordering, whatever order the documents were logged in.

MRR is the expected reciprocal rank of the first relevant document, ties handled
the same way.

**Gain weights** (optional, one per document; None = the definition above): each
document's gain ``2^rel - 1`` is multiplied by its weight in the DCG *and* in the
ideal DCG (the ideal ordering sorts the weighted gains). With inverse examination
propensities as weights this is the counterfactual (propensity-weighted) NDCG of
click labels (Joachims et al., WSDM 2017; Wang et al., WSDM 2018): a click at a
rarely examined position counts for more. MRR has no gain, so it is never weighted.
The weights act within a list: with one relevant document they cancel (DCG and ideal
scale alike), so the per-list normalized NDCG is not an unbiased estimate; the summed
weighted DCG is.

**DCG@k** (``dcg_k``) is the same expected DCG, *not* normalized by the ideal DCG, over
the same lists as NDCG (those with a relevant document, so list counts mean the same).
Unweighted it is plain DCG@k; with inverse examination propensities as weights it is
the counterfactual estimator of the true DCG from clicks (Joachims et al., WSDM 2017;
Agarwal et al., SIGIR 2019), unbiased under the position-based click model: a ranker
that puts a rarely examined click first scores more, which per-list NDCG cannot see
when the list has one click. Its scale depends on the data (no upper bound of 1).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

NDCG_CUTOFFS = (1, 5, 10)
DCG_CUTOFFS = (1, 5, 10)
METRIC_NAMES = tuple(f"ndcg_{k}" for k in NDCG_CUTOFFS) + ("mrr",) + tuple(f"dcg_{k}" for k in DCG_CUTOFFS)
# How reports and the run summary name them.
METRIC_LABELS = {
    **{f"ndcg_{k}": f"NDCG@{k}" for k in NDCG_CUTOFFS},
    "mrr": "MRR",
    **{f"dcg_{k}": f"DCG@{k}" for k in DCG_CUTOFFS},
}


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def dcg_at_k(labels_in_rank_order: np.ndarray, k: int) -> float:
    """DCG@k of labels already in rank order (no ties)."""
    labels = np.asarray(labels_in_rank_order, dtype=np.float64)[:k]
    return float(np.sum((2.0**labels - 1.0) * _discounts(labels.size)))


def _tie_groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank order (descending score) and, for each rank, the index of its tie group."""
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN: the model's output cannot be ranked")
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    group = np.concatenate([[0], np.cumsum(ranked[1:] != ranked[:-1])]) if ranked.size else ranked.astype(int)
    return order, group.astype(np.int64)


def _gains(labels: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """``2^rel - 1`` per document, times its weight when weights are given."""
    gains = 2.0 ** np.asarray(labels, dtype=np.float64) - 1.0
    if weights is None:
        return gains
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != gains.shape:
        raise ValueError(f"gain weights {weights.shape} and labels {gains.shape} differ in shape")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("gain weights must be finite and >= 0")
    return gains * weights


def expected_dcg_at_k(labels: np.ndarray, scores: np.ndarray, k: int, weights: np.ndarray | None = None) -> float:
    """DCG@k of ``scores``' ranking, tied scores counted as the mean over their orderings."""
    labels = np.asarray(labels, dtype=np.float64)
    order, group = _tie_groups(scores)
    gains = _gains(labels, weights)[order]
    sizes = np.bincount(group)
    mean_gain = np.bincount(group, weights=gains) / sizes
    top = min(k, labels.size)
    return float(np.sum(mean_gain[group[:top]] * _discounts(top)))


def ndcg_at_k(labels: np.ndarray, scores: np.ndarray, k: int = 10, weights: np.ndarray | None = None) -> float | None:
    """NDCG@k of one full list; None when the list has no relevant document.

    ``weights``: per-document gain weights (module docstring), in DCG and ideal DCG alike.
    """
    labels = np.asarray(labels, dtype=np.float64)
    if labels.shape != np.shape(scores):
        raise ValueError(f"labels {labels.shape} and scores {np.shape(scores)} differ in shape")
    if weights is None:
        ideal = dcg_at_k(np.sort(labels)[::-1], k)
    else:
        ideal_gains = np.sort(_gains(labels, weights))[::-1][:k]
        ideal = float(np.sum(ideal_gains * _discounts(ideal_gains.size)))
    if ideal <= 0:
        return None
    return expected_dcg_at_k(labels, scores, k, weights) / ideal


def reciprocal_rank(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Expected 1 / rank of the first relevant document; None without relevant documents.

    Inside the first tie group holding a relevant document (``m`` documents, ``r`` of
    them relevant, starting at rank ``s``), the first relevant one sits at offset
    ``j`` with probability ``C(m-1-j, r-1) / C(m, r)``.
    """
    labels = np.asarray(labels, dtype=np.float64)
    if not np.any(labels > 0):
        return None
    order, group = _tie_groups(scores)
    relevant = labels[order] > 0
    first = int(np.argmax(relevant))
    members = group == group[first]
    start = int(np.argmax(members))
    m = int(members.sum())
    r = int(relevant[members].sum())
    expected, p_none_yet = 0.0, 1.0  # P(no relevant document in the first j offsets)
    for j in range(m - r + 1):
        p_here = p_none_yet * r / (m - j)
        expected += p_here / (start + j + 1)
        p_none_yet *= (m - r - j) / (m - j)
    return expected


def list_metrics(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float] | None:
    """Every metric of ``METRIC_NAMES`` for one list; None without relevant documents.

    ``weights``: per-document gain weights of the NDCGs and DCGs (MRR is unweighted).
    """
    rr = reciprocal_rank(labels, scores)
    if rr is None:
        return None
    values = {f"ndcg_{k}": ndcg_at_k(labels, scores, k, weights) for k in NDCG_CUTOFFS}
    values["mrr"] = rr
    for k in DCG_CUTOFFS:
        values[f"dcg_{k}"] = expected_dcg_at_k(labels, scores, k, weights)
    return values


def mean_ndcg(lists: Iterable[tuple[np.ndarray, np.ndarray]], k: int = 10) -> float:
    """Mean NDCG@k over (labels, scores) pairs, skipping lists without relevant documents."""
    values = [v for labels, scores in lists if (v := ndcg_at_k(labels, scores, k)) is not None]
    if not values:
        raise ValueError("no list has a relevant document")
    return float(np.mean(values))


def random_ndcg(lists: Iterable[np.ndarray], k: int = 10) -> float:
    """Exact expected NDCG@k of a uniformly random ordering (a constant scorer)."""
    return mean_ndcg(((labels, np.zeros(np.shape(labels))) for labels in lists), k)
