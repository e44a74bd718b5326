"""The evaluator's metrics and the blessing gate (pure logic, no TFX run)."""

import numpy as np
import pytest

from components.ranking_evaluator.gate import Gate, judge
from components.ranking_evaluator.metrics import MetricAccumulator, reciprocal_rank
from pipeline.ranking_metrics import ndcg_at_k


def test_reciprocal_rank_is_one_over_the_rank_of_the_first_relevant_document():
    assert reciprocal_rank(np.array([0, 0, 3, 1]), np.array([0.9, 0.8, 0.1, 0.5])) == pytest.approx(1 / 3)
    assert reciprocal_rank(np.array([2, 0]), np.array([0.9, 0.1])) == 1.0
    assert reciprocal_rank(np.array([0, 0]), np.array([0.9, 0.1])) is None


def test_accumulator_averages_over_lists_with_a_relevant_document_and_counts_the_rest():
    acc = MetricAccumulator()
    acc.add(np.array([0, 1, 2]), np.array([0.3, 0.2, 0.1]))  # worst order
    acc.add(np.array([2, 1, 0]), np.array([0.3, 0.2, 0.1]))  # ideal order
    acc.add(np.array([0, 0]), np.array([0.5, 0.1]))  # nothing relevant: counted, not averaged
    result = acc.result()
    assert (acc.lists, acc.lists_without_relevant, acc.documents) == (3, 1, 8)
    worst = ndcg_at_k(np.array([0, 1, 2]), np.array([0.3, 0.2, 0.1]), 10)
    assert result["ndcg_10"] == pytest.approx((worst + 1.0) / 2)
    assert result["ndcg_1"] == pytest.approx((0.0 + 1.0) / 2)
    assert result["mrr"] == pytest.approx((1 / 2 + 1.0) / 2)
    assert set(result) == {"ndcg_1", "ndcg_5", "ndcg_10", "mrr"}


def test_accumulator_refuses_mismatched_shapes_and_empty_results():
    with pytest.raises(ValueError, match="differ in shape"):
        MetricAccumulator().add(np.array([1, 0]), np.array([0.1]))
    acc = MetricAccumulator()
    acc.add(np.array([0]), np.array([0.1]))
    with pytest.raises(ValueError, match="none of the 1 evaluated lists"):
        acc.result()


GATE = Gate(metric="ndcg_10", min_value=0.7, max_regression=0.01)


def test_first_model_is_judged_on_the_threshold_alone():
    assert judge({"ndcg_10": 0.75}, None, GATE).blessed
    refused = judge({"ndcg_10": 0.65}, None, GATE)
    assert not refused.blessed and "below the threshold 0.7000" in refused.reason


def test_a_model_worse_than_the_baseline_beyond_the_tolerance_is_refused():
    refused = judge({"ndcg_10": 0.80}, {"ndcg_10": 0.82}, GATE)
    assert not refused.blessed
    assert "worse than the baseline's 0.8200" in refused.reason


def test_a_model_within_the_tolerance_of_the_baseline_is_blessed():
    assert judge({"ndcg_10": 0.815}, {"ndcg_10": 0.82}, GATE).blessed
    assert judge({"ndcg_10": 0.90}, {"ndcg_10": 0.82}, GATE).blessed


def test_both_failures_are_reported():
    refused = judge({"ndcg_10": 0.5}, {"ndcg_10": 0.8}, GATE)
    assert "below the threshold" in refused.reason and "worse than the baseline" in refused.reason


def test_gate_refuses_unknown_metrics_and_negative_tolerance():
    with pytest.raises(ValueError, match="not one of"):
        Gate(metric="auc")
    with pytest.raises(ValueError, match="max_regression"):
        Gate(max_regression=-0.1)
