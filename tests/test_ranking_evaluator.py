"""The evaluator's metrics and the blessing gate (pure logic, no TFX run)."""

import numpy as np
import pytest

from components.ranking_evaluator.gate import Gate, judge
from components.ranking_evaluator.metrics import ListTable, bootstrap_interval, list_length_bucket
from modules.ranking_metrics import ndcg_at_k, reciprocal_rank


def test_reciprocal_rank_is_one_over_the_rank_of_the_first_relevant_document():
    assert reciprocal_rank(np.array([0, 0, 3, 1]), np.array([0.9, 0.8, 0.1, 0.5])) == pytest.approx(1 / 3)
    assert reciprocal_rank(np.array([2, 0]), np.array([0.9, 0.1])) == 1.0
    assert reciprocal_rank(np.array([0, 0]), np.array([0.9, 0.1])) is None


def _table(rankers=("candidate", "baseline", "trivial"), slice_features=("device",)):
    return ListTable(rankers=rankers, slice_features=slice_features)


def test_table_averages_over_lists_with_a_relevant_document_and_counts_the_rest():
    table = _table(rankers=("candidate",), slice_features=())
    table.add(np.array([0, 1, 2]), {"candidate": np.array([0.3, 0.2, 0.1])}, {})  # worst order
    table.add(np.array([2, 1, 0]), {"candidate": np.array([0.3, 0.2, 0.1])}, {})  # ideal order
    table.add(np.array([0, 0]), {"candidate": np.array([0.5, 0.1])}, {}, missing=2)  # nothing relevant
    summary = table.summary("candidate")
    assert (summary["lists"], summary["lists_without_relevant"], summary["documents"]) == (3, 1, 8)
    assert table.missing_labels == 2
    worst = ndcg_at_k(np.array([0, 1, 2]), np.array([0.3, 0.2, 0.1]), 10)
    assert summary["metrics"]["ndcg_10"] == pytest.approx((worst + 1.0) / 2)
    assert summary["metrics"]["ndcg_1"] == pytest.approx((0.0 + 1.0) / 2)
    assert summary["metrics"]["mrr"] == pytest.approx((1 / 2 + 1.0) / 2)
    # DCG@10 (not normalised), over the same two lists: 0 + 1/log2(3) + 3/2 and 3 + 1/log2(3)
    assert summary["metrics"]["dcg_10"] == pytest.approx((1.5 + 3.0 + 2.0 / np.log2(3)) / 2)
    assert set(summary["metrics"]) == {"ndcg_1", "ndcg_5", "ndcg_10", "mrr", "dcg_1", "dcg_5", "dcg_10"}


def test_table_refuses_results_without_any_relevant_document():
    table = _table(rankers=("candidate",), slice_features=())
    table.add(np.array([0]), {"candidate": np.array([0.1])}, {})
    with pytest.raises(ValueError, match="none of the 1 evaluated lists"):
        table.summary("candidate")


def test_list_length_buckets():
    assert [list_length_bucket(n) for n in (1, 10, 11, 30, 31, 100, 101, 700)] == [
        "1-10", "1-10", "11-30", "11-30", "31-100", "31-100", "101+", "101+",
    ]  # fmt: skip


def test_slices_by_list_length_span_and_context_value_against_hand_computed_values():
    table = _table()
    perfect, reversed_ = np.array([0.9, 0.1]), np.array([0.1, 0.9])
    labels = np.array([1, 0])
    # Two short "mobile" lists: the candidate ranks both perfectly, the baseline one of them.
    table.add(labels, {"candidate": perfect, "baseline": perfect, "trivial": np.zeros(2)}, {"device": "mobile"})
    table.add(labels, {"candidate": perfect, "baseline": reversed_, "trivial": np.zeros(2)}, {"device": "mobile"})
    # One long "desktop" list (40 documents, relevant first), where the candidate is worse.
    long_labels = np.zeros(40)
    long_labels[0] = 1
    order = np.linspace(1, 0, 40)
    table.add(long_labels, {"candidate": -order, "baseline": order, "trivial": np.zeros(40)}, {"device": "desktop"})
    # A list without the context feature and without any relevant document.
    table.add(np.zeros(3), {"candidate": np.zeros(3), "baseline": np.zeros(3), "trivial": np.zeros(3)}, {})
    slices = {(s["slice"], s["value"]): s for s in table.slices("ndcg_10", "candidate", "baseline", span=4)}
    assert set(slices) == {
        ("list_length", "1-10"), ("list_length", "31-100"), ("span", "4"),
        ("device", "mobile"), ("device", "desktop"), ("device", "(missing)"),
    }  # fmt: skip
    reversed_ndcg = 1 / np.log2(3)  # the relevant document second of two
    short = slices[("list_length", "1-10")]
    assert (short["lists"], short["lists_without_relevant"]) == (3, 1)
    assert short["candidate"]["ndcg_10"] == pytest.approx(1.0)
    assert short["baseline"]["ndcg_10"] == pytest.approx((1 + reversed_ndcg) / 2)
    assert short["difference"]["mean"] == pytest.approx((1 - reversed_ndcg) / 2)
    desktop = slices[("device", "desktop")]
    assert desktop["lists"] == 1 and desktop["candidate"]["ndcg_10"] == pytest.approx(0.0)  # relevant ranked 40th
    assert desktop["baseline"]["ndcg_10"] == pytest.approx(1.0)
    assert desktop["difference"]["mean"] == pytest.approx(-1.0) and desktop["difference"]["ci95"] == [-1.0, -1.0]
    assert slices[("device", "(missing)")]["candidate"] is None  # nothing relevant to score
    span = slices[("span", "4")]
    assert span["lists"] == 4 and span["candidate"] == table.summary("candidate")["metrics"]


def test_rare_slice_values_are_pooled():
    table = _table(rankers=("candidate",), slice_features=("shop",))
    for i in range(25):
        table.add(np.array([1, 0]), {"candidate": np.array([1.0, 0.0])}, {"shop": float(i % 22)})
    values = [s["value"] for s in table.slices("ndcg_10", "candidate", "baseline") if s["slice"] == "shop"]
    assert len(values) == 21 and values[-1] == "(other)" and "3" in values  # floats that are integers print as such


def test_bootstrap_interval_covers_the_true_difference_at_about_its_nominal_rate():
    rng = np.random.default_rng(1)
    true_gap, covered, trials = 0.03, 0, 300
    for trial in range(trials):
        gaps = true_gap + rng.normal(0.0, 0.2, size=80)  # per-list candidate - baseline NDCG
        low, high = bootstrap_interval(gaps, samples=500, seed=trial)
        covered += low <= true_gap <= high
    # Percentile bootstrap on n=80: close to 95%; 300 trials give a standard error of ~1.3%.
    assert 0.90 <= covered / trials <= 0.985


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
