"""Simulated click logs (``ltr sample-data --clicks``) and propensity estimation on them (numpy only)."""

from __future__ import annotations

import csv
import dataclasses
from datetime import datetime

import numpy as np
import pytest
import yaml

from modules.features import Role, load_feature_set
from modules.propensity import Propensities, estimate, non_increasing
from pipeline.cli import main
from pipeline.click_sample import (
    EVENT_COLUMNS,
    FEATURES,
    FLAT_COLUMNS,
    IMPRESSION_COLUMNS,
    ClickSpec,
    click_probability,
    examination,
    simulate,
    write_flat_span,
)
from pipeline.config import apply_overrides, config_from_dict, load_config
from pipeline.preflight import preflight

SPEC = ClickSpec(spans=1, queries=300, seed=5)


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_clicks_follow_the_examination_curve_times_the_click_model():
    sim = simulate(1, dataclasses.replace(SPEC, queries=3000, eta=1.0))
    position = sim.columns["position"]
    assert np.array_equal(sim.examination, 1.0 / position)
    expected = sim.examination * click_probability(sim.grade, SPEC.eps_plus, SPEC.eps_minus)
    for k in (1, 2, 3, 5, 8, 12):
        at = position == k
        observed, mean = sim.clicked[at].sum(), expected[at].sum()
        # Binomial counts: within 4 standard deviations of the click model's expectation.
        assert abs(observed - mean) < 4 * np.sqrt(mean), (k, observed, mean)
    # The production ranker favours relevant items: position bias and relevance are confounded.
    assert sim.grade[position == 1].mean() > sim.grade[position == 10].mean() + 0.5


def test_cart_and_purchase_only_after_a_click_and_rarer():
    sim = simulate(1, SPEC)
    assert not (sim.carted & ~sim.clicked).any()
    assert not (sim.bought & ~sim.carted).any()
    assert sim.clicked.sum() > sim.carted.sum() > sim.bought.sum() > 0
    # In the event log too: every purchase's (request, item) was clicked before (orphans aside).
    first: dict[tuple[str, str, str], str] = {}
    for request, item, event, timestamp in sim.events:
        first.setdefault((request, item, event), timestamp)
    for (request, item, event), timestamp in first.items():
        if event != "click" and "unknown" not in item:
            assert (request, item, "click") in first
            assert first[(request, item, "click")] < timestamp


def test_labels_of_the_flat_form_are_the_events_grades(tmp_path):
    sim = write_flat_span(tmp_path, 1, SPEC, label="clicks")
    rows = _rows(tmp_path / "span-1" / "logs.csv")
    assert tuple(rows[0]) == FLAT_COLUMNS
    labels = np.array([int(r["label"]) for r in rows])
    assert np.array_equal(labels, sim.click_label)
    assert set(labels.tolist()) <= {0, 1, 2} and (labels == 2).sum() == sim.bought.sum()
    oracle = write_flat_span(tmp_path / "oracle", 1, SPEC, label="oracle")
    assert np.array_equal([int(r["label"]) for r in _rows(tmp_path / "oracle" / "span-1" / "logs.csv")], oracle.grade)
    with pytest.raises(ValueError, match="label must be"):
        write_flat_span(tmp_path, 1, SPEC, label="purchases")


def test_sample_data_clicks_writes_the_spec_layout(tmp_path, capsys):
    out = tmp_path / "clicks"
    assert main(["sample-data", "--clicks", "--out", str(out), "--queries", "40", "--spans", "2", "--seed", "3"]) == 0
    assert "ltr run --config" in capsys.readouterr().out
    impressions = {}
    for span in (1, 2):
        rows = _rows(out / f"span-{span}" / "impressions" / "part-00000.csv")
        assert tuple(rows[0]) == IMPRESSION_COLUMNS and "label" not in rows[0]
        impressions.update({(r["request_id"], r["item_id"]): r for r in rows})
        for request in {r["request_id"] for r in rows}:  # positions 1..n in each request
            shown = sorted(int(r["position"]) for r in rows if r["request_id"] == request)
            assert shown == list(range(1, len(shown) + 1))
        events = _rows(out / f"span-{span}" / "events" / "part-00000.csv")
        assert tuple(events[0]) == EVENT_COLUMNS
        assert {e["event"] for e in events} <= {"click", "add_to_cart", "purchase"}
        times = [datetime.strptime(e["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ") for e in events]
        assert times == sorted(times)
        orphans = [e for e in events if (e["request_id"], e["item_id"]) not in impressions]
        assert 1 <= len(orphans) <= max(1, 0.02 * len(events))
        oracle = _rows(out / "oracle" / f"span-{span}.csv")
        assert tuple(oracle[0]) == ("request_id", "item_id", "relevance", "examination", "position")
        assert len(oracle) == len(rows)
        for row in oracle:
            assert float(row["examination"]) == pytest.approx(1.0 / int(row["position"]))
            assert impressions[(row["request_id"], row["item_id"])]["position"] == row["position"]
            assert 0 <= int(row["relevance"]) <= 4
    curve = _rows(out / "oracle" / "propensity.csv")
    assert [float(r["examination"]) for r in curve] == pytest.approx(examination(np.arange(1, 31), 1.0))

    features = load_feature_set(out / "schema.pbtxt")
    assert features.single(Role.POSITION).name == "position" and features.single(Role.POSITION).min_value == 1
    assert features.query_id.name == "query_id" and features.single(Role.DOC_ID).name == "doc_id"
    assert {f.name for f in features.context + features.document} == set(FEATURES)

    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["data_root"] == str(out.resolve())
    assert config["examples"]["input_pattern"] == "span-{SPAN}/impressions/*.csv"
    assert config["examples"]["columns"] == {"query_id": "request_id", "doc_id": "item_id"}
    assert config["examples"]["events"] == {
        "input_pattern": "span-{SPAN}/events/*.csv",
        "format": "auto",
        "event_column": "event",
        "timestamp_column": "timestamp",
        "labels": {"purchase": 2, "add_to_cart": 1, "click": 1},
    }
    assert config["training"] == {"position_bias": "ipw", "ipw_max_weight": 10.0}
    assert config["evaluation"] == {"metric": "dcg_10"}  # the counterfactual DCG: NDCG cancels one-click weights
    # Everything else of it is a valid pipeline config (examples.events: the events join's key).
    known = {f.name for f in dataclasses.fields(load_config().examples)}
    if "events" not in known:
        del config["examples"]["events"]
    assert config_from_dict(config, "config.yaml").training.position_bias == "ipw"


@pytest.mark.parametrize("eta", [1.0, 1.5])
def test_regression_em_recovers_the_examination_curve(eta):
    """Within 0.08 (absolute, relative to position 1) at positions 1-10, from ~20,000 impressions."""
    sim = simulate(1, dataclasses.replace(SPEC, queries=1000, eta=eta))
    features = np.stack([sim.columns[name] for name in FEATURES], axis=1)
    propensities = estimate(sim.columns["position"], sim.clicked, features)
    true = examination(np.arange(1, 11), eta)
    error = np.max(np.abs(np.array(propensities.relative[:10]) - true))
    assert error < 0.08
    # The naive estimate (click rate by position vs. position 1) is further off: relevance is confounded.
    rate = [sim.clicked[sim.columns["position"] == k].mean() for k in range(1, 11)]
    assert np.max(np.abs(np.array(rate) / rate[0] - true)) > error + 0.02
    diagnostics = propensities.diagnostics
    assert diagnostics["impressions"] == sim.clicked.size and diagnostics["clicks"] == sim.clicked.sum()
    assert diagnostics["log_likelihood_history"][-1] >= diagnostics["log_likelihood_history"][0]


def test_propensity_weights_are_clipped_and_missing_positions_weigh_one():
    propensities = Propensities((1.0, 0.5, 0.05))
    weights = propensities.weights(np.array([0, 1, 2, 3, 4, 50]), max_weight=10.0)
    assert weights.tolist() == [1.0, 1.0, 2.0, 10.0, 10.0, 10.0]
    again = Propensities.from_json(propensities.to_json())
    assert again.relative == propensities.relative
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        Propensities.from_json('{"positions": [1, 2], "propensity": [1.0, 0.0]}')
    assert non_increasing(np.array([1.0, 0.4, 0.6, 0.2]), np.array([1, 1, 1, 1])).tolist() == [1.0, 0.5, 0.5, 0.2]


def test_no_clicks_is_a_clear_error():
    with pytest.raises(ValueError, match="0 clicks"):
        estimate(np.array([1, 2, 3]), np.array([0, 0, 0]), np.zeros((3, 2)))


def test_preflight_warns_when_ipw_is_gated_on_ndcg(tmp_path):
    out = tmp_path / "clicks"
    assert main(["sample-data", "--clicks", "--out", str(out), "--queries", "20", "--spans", "1", "--seed", "3"]) == 0
    config, schema = load_config(out / "config.yaml"), str(out / "schema.pbtxt")
    assert not [w for w in preflight(config, schema).warnings if "evaluation.metric" in w]
    warned = [w for w in preflight(apply_overrides(config, {"evaluation.metric": "ndcg_10"}), schema).warnings]
    assert [w for w in warned if "evaluation.metric" in w] == [
        "config 'evaluation.metric' is ndcg_10 with 'training.position_bias' ipw: per-list normalisation cancels "
        "the propensity weights in one-click lists, so the gate favours the logged order; use dcg_10 (the "
        "counterfactual DCG)"
    ]
    unbiased = apply_overrides(config, {"evaluation.metric": "ndcg_10", "training.position_bias": "none"})
    assert not [w for w in preflight(unbiased, schema).warnings if "evaluation.metric" in w]
