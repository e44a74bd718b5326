"""The pipeline's one metric definition (modules.ranking_metrics), on hand-computed cases."""

import itertools
import math

import numpy as np
import pytest

from modules.ranking_metrics import (
    dcg_at_k,
    list_metrics,
    mean_ndcg,
    ndcg_at_k,
    random_ndcg,
    reciprocal_rank,
)


def test_dcg_uses_exponential_gain_and_log2_discount():
    # (2^3-1)/log2(2) + (2^0-1)/log2(3) + (2^1-1)/log2(4)
    assert dcg_at_k(np.array([3, 0, 1]), 10) == pytest.approx(7 + 0 + 1 / 2)
    assert dcg_at_k(np.array([3, 0, 1]), 1) == pytest.approx(7)


def test_ndcg_of_perfect_and_reversed_orderings():
    labels = np.array([0, 1, 2, 3])
    assert ndcg_at_k(labels, np.array([0.1, 0.2, 0.3, 0.4])) == pytest.approx(1.0)
    reversed_dcg = 0 / math.log2(2) + 1 / math.log2(3) + 3 / math.log2(4) + 7 / math.log2(5)
    ideal = 7 / math.log2(2) + 3 / math.log2(3) + 1 / math.log2(4) + 0
    assert ndcg_at_k(labels, -labels.astype(float)) == pytest.approx(reversed_dcg / ideal)


def test_lists_without_relevant_documents_are_skipped():
    assert ndcg_at_k(np.zeros(3), np.arange(3)) is None
    assert list_metrics(np.zeros(3), np.arange(3)) is None
    assert mean_ndcg([(np.zeros(3), np.arange(3)), (np.array([1, 0]), np.array([1.0, 0.0]))]) == 1.0
    with pytest.raises(ValueError):
        mean_ndcg([(np.zeros(2), np.arange(2))])


def _mean_over_orderings(labels, scores, metric):
    """Brute force: every ordering of each tie group, equally likely."""
    values = []
    for perm in itertools.permutations(range(len(labels))):
        ranked = np.asarray(scores)[list(perm)]
        if np.all(ranked[:-1] >= ranked[1:]):  # perm is a descending-score ordering
            tie_free = -np.arange(len(labels), dtype=float)  # rank order as distinct scores
            order = np.empty(len(labels))
            order[list(perm)] = tie_free
            values.append(metric(np.asarray(labels), order))
    return float(np.mean(values))


@pytest.mark.parametrize(
    "labels,scores",
    [
        ([2, 0, 1, 0, 3], [0.5, 0.5, 0.5, 0.1, 0.9]),  # a three-way tie in the middle
        ([0, 1, 0, 0], [1.0, 1.0, 1.0, 1.0]),  # constant scorer
        ([1, 0, 2, 1, 0, 0], [0.3, 0.3, 0.2, 0.2, 0.2, 0.1]),  # two tie groups
    ],
)
def test_ties_count_as_the_expectation_over_their_orderings(labels, scores):
    for k in (1, 3, 10):
        expected = _mean_over_orderings(labels, scores, lambda lab, s, k=k: ndcg_at_k(lab, s, k))
        assert ndcg_at_k(np.array(labels), np.array(scores), k) == pytest.approx(expected, abs=1e-12)
    expected_rr = _mean_over_orderings(labels, scores, reciprocal_rank)
    assert reciprocal_rank(np.array(labels), np.array(scores)) == pytest.approx(expected_rr, abs=1e-12)


def test_a_constant_scorer_gets_the_random_order_value_whatever_the_logged_order():
    labels = np.array([3, 0, 0, 1, 0])
    logged_best_first = ndcg_at_k(labels, np.zeros(5), 3)
    logged_worst_first = ndcg_at_k(labels[::-1].copy(), np.zeros(5), 3)
    assert logged_best_first == pytest.approx(logged_worst_first)
    # One relevant document among n: expected reciprocal rank is the mean of 1/1..1/n.
    assert reciprocal_rank(np.array([0, 0, 1, 0]), np.zeros(4)) == pytest.approx(np.mean([1, 1 / 2, 1 / 3, 1 / 4]))
    assert random_ndcg([labels]) == pytest.approx(ndcg_at_k(labels, np.zeros(5)))


def test_random_ordering_is_between_worst_and_best():
    lists = [np.array([0, 0, 0, 1, 2]), np.array([2, 0, 0, 0])]
    value = random_ndcg(lists)
    worst = mean_ndcg((labels, -labels.astype(float)) for labels in lists)
    assert worst < value < 1.0


def test_nan_scores_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        ndcg_at_k(np.array([1, 0]), np.array([np.nan, 0.0]))


# --- gain weights (propensity-weighted NDCG) -------------------------------------------------


@pytest.mark.parametrize(
    "labels,scores",
    [([2, 0, 1, 0, 3], [0.5, 0.5, 0.5, 0.1, 0.9]), ([0, 1, 0, 0], [1.0, 1.0, 1.0, 1.0]), ([1, 0, 2], [3.0, 2.0, 1.0])],
)
def test_unit_gain_weights_are_the_unweighted_metric(labels, scores):
    labels, scores = np.array(labels, float), np.array(scores)
    ones = np.ones(labels.size)
    for k in (1, 5, 10):
        assert ndcg_at_k(labels, scores, k, ones) == pytest.approx(ndcg_at_k(labels, scores, k), abs=1e-15)
    assert list_metrics(labels, scores, ones) == pytest.approx(list_metrics(labels, scores))


def test_weighted_ndcg_by_hand():
    labels, weights = np.array([1.0, 0.0, 1.0]), np.array([1.0, 1.0, 4.0])
    scores = np.array([3.0, 2.0, 1.0])
    # gains w * (2^rel - 1) = [1, 0, 4]; DCG = 1/log2(2) + 0 + 4/log2(4) = 3
    # ideal: [4, 1, 0] -> 4 + 1/log2(3)
    assert ndcg_at_k(labels, scores, 10, weights) == pytest.approx(3.0 / (4.0 + 1.0 / math.log2(3)))
    assert ndcg_at_k(labels, scores, 1, weights) == pytest.approx(1.0 / 4.0)
    # unweighted the same list is 1.5 / (1 + 1/log2(3)) and NDCG@1 = 1: the weights change the verdict
    assert ndcg_at_k(labels, scores, 10) == pytest.approx(1.5 / (1.0 + 1.0 / math.log2(3)))
    assert ndcg_at_k(labels, scores, 1) == 1.0
    # MRR has no gain: unchanged by weights
    metrics = list_metrics(labels, scores, weights)
    assert metrics["mrr"] == 1.0 and metrics["ndcg_1"] == pytest.approx(0.25)


def test_weighted_ties_are_the_expectation_over_orderings():
    labels, weights = np.array([1.0, 0.0, 1.0]), np.array([1.0, 1.0, 4.0])
    scores = np.array([1.0, 1.0, 0.0])
    # ranks 1-2 share the tie group's mean gain (1 + 0) / 2; doc 3 (gain 4) at rank 3
    by_hand = (0.5 + 0.5 / math.log2(3) + 4.0 / 2.0) / (4.0 + 1.0 / math.log2(3))
    assert ndcg_at_k(labels, scores, 10, weights) == pytest.approx(by_hand)
    for k in (1, 2, 3):
        expected = _mean_over_orderings(labels, scores, lambda lab, s, k=k: ndcg_at_k(lab, s, k, weights))
        assert ndcg_at_k(labels, scores, k, weights) == pytest.approx(expected, abs=1e-12)


def test_bad_gain_weights_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        ndcg_at_k(np.array([1.0, 0.0]), np.zeros(2), 10, np.ones(3))
    with pytest.raises(ValueError, match="finite"):
        ndcg_at_k(np.array([1.0, 0.0]), np.zeros(2), 10, np.array([np.inf, 1.0]))


def test_with_one_relevant_document_the_weights_cancel():
    labels, scores = np.array([0.0, 1.0, 0.0]), np.array([3.0, 2.0, 1.0])
    assert ndcg_at_k(labels, scores, 10, np.array([1.0, 7.0, 2.0])) == pytest.approx(ndcg_at_k(labels, scores, 10))


# --- DCG@k (unnormalised; the counterfactual DCG under ipw) -----------------------------------


def test_unweighted_dcg_by_hand():
    labels, scores = np.array([2.0, 0.0, 1.0]), np.array([1.0, 3.0, 2.0])
    # ranked: label 0, 1, 2 -> 0 + 1/log2(3) + 3/log2(4)
    metrics = list_metrics(labels, scores)
    assert metrics["dcg_10"] == pytest.approx(1.0 / math.log2(3) + 1.5)
    assert metrics["dcg_5"] == metrics["dcg_10"]
    assert metrics["dcg_1"] == 0.0
    # not normalised: NDCG@10 of the same list is DCG / ideal (3 + 1/log2(3))
    assert metrics["ndcg_10"] == pytest.approx(metrics["dcg_10"] / (3.0 + 1.0 / math.log2(3)))


def test_weighted_dcg_by_hand():
    labels, weights = np.array([1.0, 0.0, 1.0]), np.array([1.0, 1.0, 4.0])
    # weighted gains [1, 0, 4]; ranked C, B, A: 4 + 0 + 1/log2(4)
    metrics = list_metrics(labels, np.array([1.0, 2.0, 3.0]), weights)
    assert metrics["dcg_10"] == pytest.approx(4.5) and metrics["dcg_1"] == pytest.approx(4.0)
    # one relevant document: NDCG cannot tell rank 1 at weight 1 from rank 1 at weight 4, DCG can
    one = np.array([0.0, 0.0, 1.0])
    top = np.array([1.0, 2.0, 3.0])
    light, heavy = list_metrics(one, top, np.ones(3)), list_metrics(one, top, np.array([1.0, 1.0, 4.0]))
    assert light["ndcg_10"] == heavy["ndcg_10"] == 1.0
    assert (light["dcg_10"], heavy["dcg_10"]) == (pytest.approx(1.0), pytest.approx(4.0))


def test_dcg_ties_are_the_expectation_over_orderings():
    labels, weights = np.array([1.0, 0.0, 1.0]), np.array([1.0, 1.0, 4.0])
    scores = np.array([1.0, 1.0, 0.0])
    # ranks 1-2 share the mean gain (1 + 0) / 2, the gain-4 document at rank 3
    assert list_metrics(labels, scores, weights)["dcg_10"] == pytest.approx(0.5 + 0.5 / math.log2(3) + 2.0)
    for k in (1, 5, 10):
        expected = _mean_over_orderings(labels, scores, lambda lab, s, k=k: list_metrics(lab, s, weights)[f"dcg_{k}"])
        assert list_metrics(labels, scores, weights)[f"dcg_{k}"] == pytest.approx(expected, abs=1e-12)


def test_dcg_skips_the_lists_ndcg_skips():
    assert list_metrics(np.zeros(3), np.array([1.0, 2.0, 3.0]), np.ones(3)) is None


def test_the_trainers_validation_metrics_are_this_definition():
    """TF-Ranking's metrics as the Trainer compiles them give the numpy means: lists without a
    relevant document are left out (TF-Ranking alone would count them as 0), padding (-1) is
    ignored, and the mean over two update_state calls weighs every list once."""
    import tensorflow as tf

    from modules.training.model import ranking_metrics

    rng = np.random.default_rng(3)
    lists = [
        (np.array([3, 0, 1, 0, 2]), rng.normal(size=5)),
        (np.array([0, 0, 0]), rng.normal(size=3)),  # no relevant document: left out
        (np.array([0, 1, 0, 0]), rng.normal(size=4)),
        (np.array([0, 0]), rng.normal(size=2)),
        (np.array([2, 2, 0, 1, 0, 0]), rng.normal(size=6)),
    ]
    metrics = {m.name: m for m in ranking_metrics()}
    width = 6
    for batch in (lists[:2], lists[2:]):
        labels = np.full((len(batch), width), -1.0, np.float32)
        scores = np.zeros((len(batch), width), np.float32)
        for row, (lab, sc) in enumerate(batch):
            labels[row, : len(lab)] = lab
            scores[row, : len(sc)] = sc
        for metric in metrics.values():
            metric.update_state(tf.constant(labels), tf.constant(scores))
    for k in (1, 5, 10):
        assert metrics[f"ndcg_{k}"].result().numpy() == pytest.approx(mean_ndcg(lists, k=k), abs=1e-6)
    relevant = [reciprocal_rank(lab, sc) for lab, sc in lists if lab.max() > 0]
    assert metrics["mrr"].result().numpy() == pytest.approx(np.mean(relevant), abs=1e-6)
