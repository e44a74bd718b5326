import math

import numpy as np
import pytest

from pipeline.ranking_metrics import dcg_at_k, mean_ndcg, ndcg_at_k, random_ndcg


def test_dcg_uses_exponential_gain_and_log2_discount():
    # (2^3-1)/log2(2) + (2^0-1)/log2(3) + (2^1-1)/log2(4)
    assert dcg_at_k(np.array([3, 0, 1]), 10) == pytest.approx(7 + 0 + 1 / 2)
    assert dcg_at_k(np.array([3, 0, 1]), 1) == pytest.approx(7)


def test_ndcg_of_perfect_and_reversed_orderings():
    labels = np.array([0, 1, 2, 3])
    assert ndcg_at_k(labels, np.array([0.1, 0.2, 0.3, 0.4])) == pytest.approx(1.0)
    reversed_dcg = 0 / math.log2(2) + 1 / math.log2(3) + 3 / math.log2(4) + 7 / math.log2(5)
    ideal = 7 / math.log2(2) + 3 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(labels, -labels.astype(float)) == pytest.approx(reversed_dcg / ideal)


def test_lists_without_relevant_documents_are_skipped():
    assert ndcg_at_k(np.zeros(3), np.arange(3)) is None
    assert mean_ndcg([(np.zeros(3), np.arange(3)), (np.array([1, 0]), np.array([1.0, 0.0]))]) == 1.0
    with pytest.raises(ValueError):
        mean_ndcg([(np.zeros(2), np.arange(2))])


def test_random_ordering_is_between_worst_and_best():
    lists = [np.array([0, 0, 0, 1, 2]), np.array([2, 0, 0, 0])]
    value = random_ndcg(lists, repeats=200)
    worst = mean_ndcg((labels, -labels.astype(float)) for labels in lists)
    assert worst < value < 1.0
