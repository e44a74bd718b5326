"""RankingEvaluator's executor with a Propensities input: propensity-weighted NDCG, by hand.

One test list of click labels, logged in the order A, B, C (positions 1, 2, 3); A and
C were clicked. The candidate ranks C, B, A. Unweighted, both orders have the same
gains, so the candidate cannot beat the logged order; with the inverse propensities
(1, 2, 4 clipped at 3) the click at the rarely examined position 3 counts three times,
for the candidate and for the logged-order trivial ranker alike.
"""

from __future__ import annotations

import json
import math
import os

import pytest
import tensorflow as tf
import tensorflow_ranking as tfr
from tensorflow_serving.apis import input_pb2
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from components.propensity_estimator.spec import Propensities as PropensitiesArtifact
from components.ranking_evaluator.executor import EVALUATION_FILE, Executor
from modules.propensity import PROPENSITIES_FILE, Propensities
from tests.helpers import schema_artifact

# (position, click, price): the candidate scores a document by its price.
DOCUMENTS = [(1, 1, 1.0), (2, 0, 2.0), (3, 1, 3.0)]
RELATIVE_PROPENSITIES = (1.0, 0.5, 0.25)
MAX_WEIGHT = 3.0  # 1/0.25 = 4 is clipped to 3, as the Trainer clips it


def _elwc(documents=DOCUMENTS) -> bytes:
    elwc = input_pb2.ExampleListWithContext()
    for position, click, price in documents:
        example = elwc.examples.add()
        example.features.feature["position"].int64_list.value.append(position)
        example.features.feature["label"].int64_list.value.append(click)
        example.features.feature["price"].float_list.value.append(price)
    return elwc.SerializeToString()


class _PriceRanker(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, examples):
        features = tfr.data.parse_from_example_list(
            examples,
            example_feature_spec={"price": tf.io.FixedLenFeature([1], tf.float32, default_value=0.0)},
            mask_feature_name="mask",
        )
        return {"scores": features["price"][..., 0], "mask": features["mask"]}


def _inputs(root, lists):
    examples = standard_artifacts.Examples()
    examples.uri = str(root / "examples")
    examples.split_names = json.dumps(["test"])
    os.makedirs(os.path.join(examples.uri, "Split-test"))
    with tf.io.TFRecordWriter(os.path.join(examples.uri, "Split-test", "data_tfrecord-00000-of-00001")) as writer:
        for documents in lists:
            writer.write(_elwc(documents))
    model = standard_artifacts.Model()
    model.uri = str(root / "model")
    ranker = _PriceRanker()
    tf.saved_model.save(ranker, path_utils.serving_model_path(model.uri), signatures={"serving_default": ranker.serve})
    propensities = PropensitiesArtifact()
    propensities.uri = str(root / "propensities")
    os.makedirs(propensities.uri)
    with open(os.path.join(propensities.uri, PROPENSITIES_FILE), "w") as handle:
        handle.write(Propensities(RELATIVE_PROPENSITIES).to_json())
    return root, {"examples": [examples], "model": [model], "schema": [schema_artifact(root)]}, propensities


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return _inputs(tmp_path_factory.mktemp("ipw_eval"), [DOCUMENTS])


# Two one-click lists: the click at position 1 (weight 1) and at position 3 (weight 3 after
# clipping). The price ranker puts the first list's click last and the second's first.
ONE_CLICK_LISTS = [[(1, 1, 1.0), (2, 0, 2.0), (3, 0, 3.0)], [(1, 0, 1.0), (2, 0, 2.0), (3, 1, 3.0)]]


@pytest.fixture(scope="module")
def one_click_inputs(tmp_path_factory):
    return _inputs(tmp_path_factory.mktemp("ipw_eval_one_click"), ONE_CLICK_LISTS)


def _evaluate(root, name, input_dict, **properties):
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = str(root / name / "evaluation"), str(root / name / "blessing")
    exec_properties = {"metric": "ndcg_10", "max_regression": 0.01, "min_lift": 0.01, "batch_size": 8}
    Executor().Do(input_dict, {"evaluation": [evaluation], "blessing": [blessing]}, {**exec_properties, **properties})
    with open(os.path.join(evaluation.uri, EVALUATION_FILE)) as handle:
        return json.load(handle), evaluation


def test_unweighted_clicks_cannot_tell_the_candidate_from_the_logged_order(inputs):
    root, input_dict, _ = inputs
    report, evaluation = _evaluate(root, "unweighted", input_dict)
    # gains 1, 0, 1 in either order: DCG 1 + 1/log2(4), ideal 1 + 1/log2(3)
    by_hand = 1.5 / (1.0 + 1.0 / math.log2(3))
    assert report["weighting"] == "unweighted" and report["ipw_max_weight"] is None
    assert report["metrics"]["ndcg_10"] == pytest.approx(by_hand)
    assert report["trivial"]["ranker"] == "logged order"
    assert report["trivial"]["metrics"]["ndcg_10"] == pytest.approx(by_hand)
    assert not report["blessed"] and not report["reason"].startswith("propensity-weighted")
    assert evaluation.get_string_custom_property("weighting") == "unweighted"


def test_propensities_weight_every_ranker_s_gains_by_hand(inputs):
    root, input_dict, propensities = inputs
    report, evaluation = _evaluate(
        root, "ipw", {**input_dict, "propensities": [propensities]}, ipw_max_weight=MAX_WEIGHT
    )
    # weights min(1/p, 3) = 1, 2, 3 -> weighted gains A 1, B 0, C 3; ideal 3 + 1/log2(3)
    ideal = 3.0 + 1.0 / math.log2(3)
    candidate = (3.0 + 0.0 + 1.0 / 2.0) / ideal  # C, B, A
    logged = (1.0 + 0.0 + 3.0 / 2.0) / ideal  # A, B, C: the same weights for the trivial ranker
    assert report["weighting"] == "propensity-weighted (ipw)" and report["ipw_max_weight"] == MAX_WEIGHT
    assert report["metrics"]["ndcg_10"] == pytest.approx(candidate)
    assert report["metrics"]["ndcg_1"] == pytest.approx(1.0)
    assert report["trivial"]["metrics"]["ndcg_10"] == pytest.approx(logged)
    assert report["trivial"]["metrics"]["ndcg_1"] == pytest.approx(1.0 / 3.0)
    assert report["metrics"]["mrr"] == report["trivial"]["metrics"]["mrr"] == 1.0  # MRR is never weighted
    assert report["blessed"]
    assert report["reason"].startswith("propensity-weighted (ipw): ndcg_10 0.9639 >= logged order's 0.6885")
    assert evaluation.get_float_custom_property("trivial_ndcg_10") == pytest.approx(logged)
    assert evaluation.get_string_custom_property("weighting") == "propensity-weighted (ipw)"


def test_unreadable_propensities_are_named(inputs, tmp_path):
    root, input_dict, _ = inputs
    broken = PropensitiesArtifact()
    broken.uri = str(tmp_path / "missing")
    with pytest.raises(ValueError, match="cannot read the propensities .*missing"):
        _evaluate(root, "broken", {**input_dict, "propensities": [broken]}, ipw_max_weight=MAX_WEIGHT)


def test_on_one_click_lists_ndcg_cannot_tell_but_the_counterfactual_dcg_prefers_the_candidate(one_click_inputs):
    root, input_dict, propensities = one_click_inputs
    ipw = {**input_dict, "propensities": [propensities]}
    # One click per list: the weights cancel in NDCG, candidate and logged order both (1/2 + 1) / 2
    report, _ = _evaluate(root, "ndcg", ipw, ipw_max_weight=MAX_WEIGHT)
    assert report["metrics"]["ndcg_10"] == pytest.approx(0.75)
    assert report["trivial"]["metrics"]["ndcg_10"] == pytest.approx(0.75)
    assert not report["blessed"]
    # DCG with weights 1 and 3: candidate (1 * 1/2 + 3 * 1) / 2, logged order (1 * 1 + 3 * 1/2) / 2
    report, evaluation = _evaluate(root, "dcg", ipw, ipw_max_weight=MAX_WEIGHT, metric="dcg_10")
    assert report["metrics"]["dcg_10"] == pytest.approx(1.75)
    assert report["trivial"]["metrics"]["dcg_10"] == pytest.approx(1.25)
    assert report["metrics"]["dcg_1"] == pytest.approx(1.5) and report["trivial"]["metrics"]["dcg_1"] == 0.5
    assert report["blessed"]
    assert report["reason"].startswith("propensity-weighted (ipw): dcg_10 1.7500 >= logged order's 1.2500")
    assert report["difference_to_trivial"]["metric"] == "dcg_10"
    assert report["difference_to_trivial"]["mean"] == pytest.approx(0.5)
    assert evaluation.get_float_custom_property("trivial_dcg_10") == pytest.approx(1.25)
    # unweighted the same lists are a tie on DCG too: only the propensities tell them apart
    report, _ = _evaluate(root, "dcg_unweighted", input_dict, metric="dcg_10")
    assert report["metrics"]["dcg_10"] == pytest.approx(0.75) == report["trivial"]["metrics"]["dcg_10"]
    assert not report["blessed"]
