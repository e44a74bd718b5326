"""ELWC decoding into numeric blocks, default filling + transforms on the block, densifying.

The vectorized path (one block per role) is checked against a per-feature
reference written here (one ragged parse, one default, one transform per
feature, as the pipeline did before the blocks) on records with missing,
NaN and infinite values.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from components.elwc_example_gen.elwc import elwc_from_values
from modules.features import CONTEXT_BLOCK, DOCUMENT_BLOCK, MASK_KEY, Role, Transform
from modules.training.inputs import ModelInputs, densify, raw_to_model_inputs
from modules.transform.decoder import TF_DTYPES, decode_elwc, split_elwc
from modules.transform.preprocessing import fill_defaults, signed_log1p, transform_features


def _elwc(context: dict, documents: list[dict]) -> bytes:
    return elwc_from_values(context, documents).SerializeToString()


RECORDS = [
    _elwc(
        {"query_id": b"q1", "query_length": 3},
        [{"price": 99.0, "label": 2, "num_reviews": 10}, {"price_change_7d": -20.0, "label": 0}],
    ),
    _elwc({"query_id": b"q2", "user_tenure_days": 400}, [{"rating": 4.5}]),
]
NAN = float("nan")
# Missing, NaN and infinite values in every numeric feature, ints and floats.
AWKWARD = RECORDS + [
    _elwc(
        {"query_id": b"q3", "query_length": 7, "user_tenure_days": 12},
        [
            {"price": NAN, "rating": float("inf"), "ctr_7d": 0.25, "num_reviews": 0, "label": 1},
            {"price": -float("inf"), "price_change_7d": 3.5, "text_match": 2.0, "num_reviews": 123456},
            {},
        ],
    ),
    _elwc({}, []),
]


def _model_inputs(feature_set) -> ModelInputs:
    return ModelInputs.from_feature_set(feature_set, ids={})


def _reference(records: list[bytes], feature_set) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per feature, independently of the blocks: ragged parse, first value or default
    (NaN and inf are missing), signed log1p or passthrough. Returns (filled, transformed),
    documents flattened to [N]."""
    context, documents = split_elwc(tf.constant(records))
    filled_values, out = {}, {}
    for feature in feature_set.context + feature_set.document:
        serialized = context if feature.role == Role.CONTEXT else documents.flat_values
        spec = {feature.name: tf.io.RaggedFeature(dtype=TF_DTYPES[feature.dtype], row_splits_dtype=tf.int64)}
        values = tf.cast(tf.io.parse_example(serialized, spec)[feature.name], tf.float32)
        first = values.to_tensor(default_value=NAN, shape=[None, 1])[:, 0]
        filled = tf.where(tf.math.is_finite(first), first, float(feature.default))
        filled_values[feature.name] = filled.numpy()
        out[feature.name] = (signed_log1p(filled) if feature.transform == Transform.LOG1P else filled).numpy()
    return filled_values, out


def test_signed_log1p_is_odd_and_matches_numpy():
    x = np.array([-1000.0, -1.0, 0.0, 0.5, 1e6], dtype=np.float32)
    expected = np.sign(x) * np.log1p(np.abs(x))
    np.testing.assert_allclose(signed_log1p(tf.constant(x)).numpy(), expected, rtol=1e-6)


def test_decoder_puts_numeric_features_in_blocks_with_missing_values_visible(feature_set):
    decoded = decode_elwc(tf.constant(RECORDS), feature_set)
    assert decoded["query_id"].to_list() == [[b"q1"], [b"q2"]]
    assert decoded["label"].to_list() == [[[2], [0]], [[]]]
    context = [f.name for f in feature_set.numeric(Role.CONTEXT)]
    documents = [f.name for f in feature_set.numeric(Role.DOCUMENT)]
    assert decoded[CONTEXT_BLOCK].shape.as_list() == [2, len(context)]
    assert decoded[DOCUMENT_BLOCK].shape.as_list() == [2, None, len(documents)]
    block = decoded[CONTEXT_BLOCK].numpy()
    assert block[0, context.index("query_length")] == 3 and np.isnan(block[1, context.index("query_length")])
    docs = decoded[DOCUMENT_BLOCK]
    assert docs.row_lengths().numpy().tolist() == [2, 1]
    price = docs.values.numpy()[:, documents.index("price")]
    assert price[0] == 99.0 and np.isnan(price[1:]).all()
    assert docs.values.numpy()[0, documents.index("num_reviews")] == 10  # an int64 feature, as float
    for name in documents + context + ["label"]:
        assert name not in decoded or name == "label"


def test_decoder_accepts_empty_and_contextless_records(feature_set):
    decoded = decode_elwc(tf.constant([b"", _elwc({}, [{"price": 1.0}])]), feature_set)
    assert decoded[DOCUMENT_BLOCK].row_lengths().numpy().tolist() == [0, 1]
    assert np.isnan(decoded[CONTEXT_BLOCK].numpy()).all()


def test_vectorized_path_gives_exactly_the_per_feature_reference(feature_set):
    """Decoded and default-filled values are bit-identical; after log1p, equal to the last
    float32 bit (the vectorized log1p kernel and its scalar tail may round differently)."""
    decoded = decode_elwc(tf.constant(AWKWARD), feature_set)
    out = transform_features(decoded, feature_set)
    filled, reference = _reference(AWKWARD, feature_set)
    for role, key in ((Role.CONTEXT, CONTEXT_BLOCK), (Role.DOCUMENT, DOCUMENT_BLOCK)):
        features = feature_set.numeric(role)
        raw = decoded[key] if role == Role.CONTEXT else decoded[key].values
        block = out[key] if role == Role.CONTEXT else out[key].values
        filled_block = fill_defaults(raw, features).numpy()
        for j, feature in enumerate(features):
            np.testing.assert_array_equal(filled_block[:, j], filled[feature.name], err_msg=feature.name)
            np.testing.assert_array_max_ulp(block.numpy()[:, j], reference[feature.name], maxulp=1)
    assert np.isfinite(out[DOCUMENT_BLOCK].values.numpy()).all()
    assert out[DOCUMENT_BLOCK].row_lengths().numpy().tolist() == [2, 1, 3, 0]


def test_defaults_fill_missing_values_before_log1p(feature_set):
    out = transform_features(decode_elwc(tf.constant(RECORDS), feature_set), feature_set)
    documents = {f.name: j for j, f in enumerate(feature_set.numeric(Role.DOCUMENT))}
    context = {f.name: j for j, f in enumerate(feature_set.numeric(Role.CONTEXT))}
    block = out[DOCUMENT_BLOCK]
    assert block.row_lengths().numpy().tolist() == [2, 1]
    price_default = feature_set["price"].default
    np.testing.assert_allclose(
        block.values.numpy()[:, documents["price"]],
        [math.log1p(99.0), math.log1p(price_default), math.log1p(price_default)],
        rtol=1e-6,
    )
    np.testing.assert_allclose(block[0].numpy()[:, documents["price_change_7d"]], [0.0, -math.log1p(20.0)], rtol=1e-6)
    # Passthrough feature: default as is, value as is.
    np.testing.assert_allclose(block.values.numpy()[:, documents["rating"]], [3.0, 3.0, 4.5], rtol=1e-6)
    # Context: dense [B, C], default filled.
    np.testing.assert_allclose(out[CONTEXT_BLOCK].numpy()[:, context["query_length"]], [math.log1p(3), math.log1p(1)])
    np.testing.assert_allclose(out[CONTEXT_BLOCK].numpy()[:, context["user_tenure_days"]], [0.0, math.log1p(400)])
    # Missing label becomes -1 (padding for TF-Ranking).
    assert out["label"].to_list() == [[2.0, 0.0], [-1.0]]


def test_densify_pads_to_the_longest_list_with_a_mask(feature_set):
    transformed = transform_features(decode_elwc(tf.constant(RECORDS), feature_set), feature_set)
    features, labels = densify(transformed, _model_inputs(feature_set), "label")
    width = len(feature_set.numeric(Role.DOCUMENT))
    assert features[DOCUMENT_BLOCK].shape == (2, 2, width)
    assert features[CONTEXT_BLOCK].shape == (2, len(feature_set.numeric(Role.CONTEXT)))
    assert features[MASK_KEY].numpy().tolist() == [[True, True], [True, False]]
    assert labels.numpy().tolist() == [[2.0, 0.0], [-1.0, -1.0]]


def test_list_size_truncates_and_pads_to_a_fixed_width(feature_set):
    def identity(decoded):
        return transform_features(decoded, feature_set)

    inputs = _model_inputs(feature_set)
    features, labels = raw_to_model_inputs(tf.constant(RECORDS), feature_set, inputs, identity, list_size=1)
    assert features[DOCUMENT_BLOCK].shape[:2] == (2, 1)
    assert labels.numpy().tolist() == [[2.0], [-1.0]]
    features, _ = raw_to_model_inputs(tf.constant(RECORDS), feature_set, inputs, identity, list_size=4)
    assert features[MASK_KEY].numpy().tolist() == [[True, True, False, False], [True, False, False, False]]


@pytest.mark.parametrize("label_present", [True, False])
def test_label_is_optional_at_serving(feature_set, label_present):
    decoded = decode_elwc(tf.constant(RECORDS), feature_set)
    if not label_present:
        decoded.pop("label")
    _, labels = densify(transform_features(decoded, feature_set), _model_inputs(feature_set), "label")
    assert (labels is not None) == label_present
