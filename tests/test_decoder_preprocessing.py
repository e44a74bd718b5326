"""ELWC decoding, default filling + signed log1p, and densifying for the model."""

import math

import numpy as np
import pytest
import tensorflow as tf

from components.elwc_example_gen.elwc import elwc_from_values
from modules.elwc_decoder import decode_elwc
from modules.features import MASK_KEY
from modules.model_inputs import densify, raw_to_model_inputs
from modules.preprocessing import signed_log1p, transform_features


def _elwc(context: dict, documents: list[dict]) -> bytes:
    return elwc_from_values(context, documents).SerializeToString()


RECORDS = [
    _elwc(
        {"query_id": b"q1", "query_length": 3},
        [{"price": 99.0, "label": 2, "num_reviews": 10}, {"price_change_7d": -20.0, "label": 0}],
    ),
    _elwc({"query_id": b"q2", "user_tenure_days": 400}, [{"rating": 4.5}]),
]


def test_signed_log1p_is_odd_and_matches_numpy():
    x = np.array([-1000.0, -1.0, 0.0, 0.5, 1e6], dtype=np.float32)
    expected = np.sign(x) * np.log1p(np.abs(x))
    np.testing.assert_allclose(signed_log1p(tf.constant(x)).numpy(), expected, rtol=1e-6)


def test_decoder_keeps_missing_values_visible(feature_set):
    decoded = decode_elwc(tf.constant(RECORDS), feature_set)
    assert decoded["query_id"].to_list() == [[b"q1"], [b"q2"]]
    assert decoded["query_length"].to_list() == [[3], []]
    assert decoded["price"].to_list() == [[[99.0], []], [[]]]
    assert decoded["label"].to_list() == [[[2], [0]], [[]]]


def test_decoder_accepts_empty_and_contextless_records(feature_set):
    decoded = decode_elwc(tf.constant([b"", _elwc({}, [{"price": 1.0}])]), feature_set)
    assert decoded["price"].to_list() == [[], [[1.0]]]
    assert decoded["query_length"].to_list() == [[], []]


def test_defaults_fill_missing_values_before_log1p(feature_set):
    out = transform_features(decode_elwc(tf.constant(RECORDS), feature_set), feature_set)
    price_default = feature_set["price"].default
    assert out["price"].row_lengths().numpy().tolist() == [2, 1]
    np.testing.assert_allclose(
        out["price"].flat_values.numpy(),
        [math.log1p(99.0), math.log1p(price_default), math.log1p(price_default)],
        rtol=1e-6,
    )
    np.testing.assert_allclose(out["price_change_7d"].to_list()[0], [0.0, -math.log1p(20.0)], rtol=1e-6)
    # Passthrough feature: default as is, value as is.
    np.testing.assert_allclose(out["rating"].flat_values.numpy(), [3.0, 3.0, 4.5], rtol=1e-6)
    # Context: dense [B], default filled.
    np.testing.assert_allclose(out["query_length"].numpy(), [math.log1p(3), math.log1p(1)], rtol=1e-6)
    np.testing.assert_allclose(out["user_tenure_days"].numpy(), [0.0, math.log1p(400)], rtol=1e-6)
    # Missing label becomes -1 (padding for TF-Ranking).
    assert out["label"].to_list() == [[2.0, 0.0], [-1.0]]


def test_densify_pads_to_the_longest_list_with_a_mask(feature_set):
    transformed = transform_features(decode_elwc(tf.constant(RECORDS), feature_set), feature_set)
    features, labels = densify(transformed, feature_set)
    assert features["price"].shape == (2, 2, 1)
    assert features["query_length"].shape == (2, 1)
    assert features[MASK_KEY].numpy().tolist() == [[True, True], [True, False]]
    assert labels.numpy().tolist() == [[2.0, 0.0], [-1.0, -1.0]]


def test_list_size_truncates_and_pads_to_a_fixed_width(feature_set):
    def identity(decoded):
        return transform_features(decoded, feature_set)

    features, labels = raw_to_model_inputs(tf.constant(RECORDS), feature_set, identity, list_size=1)
    assert features["price"].shape == (2, 1, 1)
    assert labels.numpy().tolist() == [[2.0], [-1.0]]
    features, _ = raw_to_model_inputs(tf.constant(RECORDS), feature_set, identity, list_size=4)
    assert features[MASK_KEY].numpy().tolist() == [[True, True, False, False], [True, False, False, False]]


@pytest.mark.parametrize("label_present", [True, False])
def test_label_is_optional_at_serving(feature_set, label_present):
    decoded = decode_elwc(tf.constant(RECORDS), feature_set)
    if not label_present:
        decoded.pop("label")
    _, labels = densify(transform_features(decoded, feature_set), feature_set)
    assert (labels is not None) == label_present
