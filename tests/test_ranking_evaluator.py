"""The evaluator's metrics and the blessing gate (pure logic, no TFX run)."""

import numpy as np
import pytest

from components.ranking_evaluator.gate import Gate, judge
from components.ranking_evaluator.metrics import MetricAccumulator
from modules.ranking_metrics import ndcg_at_k, reciprocal_rank


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


GATE = Gate(metric="ndcg_10", max_regression=0.01, min_lift=0.05)
TRIVIAL = {"ndcg_10": 0.50}


def test_first_model_is_judged_against_the_trivial_ranker():
    blessed = judge({"ndcg_10": 0.56}, None, GATE, TRIVIAL, "logged order")
    assert blessed.blessed and "no serving model" in blessed.reason
    refused = judge({"ndcg_10": 0.54}, None, GATE, TRIVIAL, "logged order")
    assert not refused.blessed
    assert refused.reason == "ndcg_10 0.5400 is below logged order's 0.5000 + min_lift 0.0500"


def test_a_model_worse_than_the_serving_model_beyond_the_tolerance_is_refused():
    refused = judge({"ndcg_10": 0.80}, {"ndcg_10": 0.82}, GATE, TRIVIAL)
    assert not refused.blessed
    assert "is below the serving model's 0.8200 - max_regression 0.0100" in refused.reason


def test_a_model_within_the_tolerance_of_the_serving_model_is_blessed():
    assert judge({"ndcg_10": 0.815}, {"ndcg_10": 0.82}, GATE, TRIVIAL).blessed
    assert judge({"ndcg_10": 0.90}, {"ndcg_10": 0.82}, GATE, TRIVIAL).blessed


def test_no_absolute_floor_by_default_so_a_hard_data_set_can_bless():
    # MSLR-like data: the best models reach ~0.5; nothing absolute stands in the way.
    assert Gate().min_value is None
    assert judge({"ndcg_10": 0.45}, None, Gate(), {"ndcg_10": 0.30}).blessed
    floored = judge({"ndcg_10": 0.45}, None, Gate(min_value=0.6), {"ndcg_10": 0.30})
    assert not floored.blessed and "is below min_value 0.6000" in floored.reason


def test_every_failure_is_reported():
    refused = judge({"ndcg_10": 0.5}, {"ndcg_10": 0.8}, Gate(min_value=0.7, min_lift=0.05), TRIVIAL)
    assert refused.reason.count("is below") == 3


def test_gate_refuses_unknown_metrics_and_negative_tolerance():
    with pytest.raises(ValueError, match="not one of"):
        Gate(metric="auc")
    with pytest.raises(ValueError, match="max_regression"):
        Gate(max_regression=-0.1)
