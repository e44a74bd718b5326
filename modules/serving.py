"""Serving signatures of the exported ranking model, Transform graph inside.

- ``serving_default``: serialized ELWC ``[B]`` -> ``scores``/``mask`` ``[B, L]``
  (TF Serving's Predict API, as TF-Ranking users deploy).
- ``predict_tensors``: one raw tensor per feature, the documents of one list
  along the first axis (``[N, 1]``; context features ``[1, 1]``), as in a plain
  TF Serving PredictRequest -> ``scores`` ``[N]``. No ELWC encoding by the client.
- ``transform_features``: serialized ELWC -> the transformed, padded model inputs,
  for checking that serving preprocesses exactly as training did.

Missing values: an absent ELWC feature, a NaN, or an empty ``[0, 1]`` tensor all
get the schema default inside the graph (the same Transform graph as training).
Only stock TF ops are used (``DecodeProtoV2``, ``ParseExample``, the Transform
graph), so TF Serving loads the model without this project or custom ops.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from modules.elwc_decoder import TF_DTYPES
from modules.features import MASK_KEY, Dtype, Feature, FeatureSet
from modules.model_inputs import densify, raw_to_model_inputs

SERVING_INPUT_KEY = "examples"
ELWC_SIGNATURE = "serving_default"
TENSORS_SIGNATURE = "predict_tensors"
TRANSFORM_SIGNATURE = "transform_features"


def _masked_scores(model: tf.keras.Model, features: dict[str, tf.Tensor]) -> tf.Tensor:
    scores = model(features, training=False)
    return tf.where(features[MASK_KEY], scores, tf.zeros_like(scores))


def _tensor_spec(feature: Feature) -> tf.TensorSpec:
    dtype = tf.string if feature.dtype == Dtype.BYTES else tf.float32
    return tf.TensorSpec([None, 1], dtype, name=feature.name)


def _present(feature: Feature, column: tf.Tensor) -> tf.Tensor:
    if feature.dtype == Dtype.BYTES:
        return tf.not_equal(column, "")
    return tf.logical_not(tf.math.is_nan(column))


def _to_raw(feature: Feature, values: tf.Tensor, rows: tf.Tensor) -> tf.RaggedTensor:
    """``[rows or 0, 1]`` tensor -> ragged ``[rows, (0|1)]`` in the decoder's dtype, missing left out."""
    given = tf.shape(values)[0]
    tf.debugging.Assert(
        tf.logical_or(tf.equal(given, rows), tf.equal(given, 0)),
        [
            f"feature '{feature.name}' has",
            given,
            "rows but the list has",
            rows,
            "documents: give every feature one row per document, or an empty [0, 1] tensor",
        ],
    )
    column = values[:, 0]
    present = _present(feature, column)
    kept = tf.boolean_mask(column, present)
    if feature.dtype == Dtype.INT:
        kept = tf.cast(tf.round(kept), tf.int64)
    lengths = tf.cast(present, tf.int64)
    lengths = tf.cond(tf.equal(tf.size(lengths), 0), lambda: tf.zeros([rows], tf.int64), lambda: lengths)
    return tf.RaggedTensor.from_row_lengths(tf.cast(kept, TF_DTYPES[feature.dtype]), lengths, validate=False)


def tensors_to_raw(inputs: dict[str, tf.Tensor], feature_set: FeatureSet) -> dict[str, Any]:
    """Per-feature tensors of one list -> the decoder's ragged layout with a batch of 1."""
    documents = feature_set.document
    num_docs = tf.reduce_max(tf.stack([tf.shape(inputs[f.name])[0] for f in documents]))
    raw: dict[str, Any] = {}
    for feature in documents:
        per_doc = _to_raw(feature, inputs[feature.name], num_docs)
        raw[feature.name] = tf.RaggedTensor.from_row_lengths(per_doc, tf.reshape(tf.cast(num_docs, tf.int64), [1]))
    for feature in feature_set.context:
        raw[feature.name] = _to_raw(feature, inputs[feature.name][:1], tf.constant(1))
    return raw


def make_signatures(model: tf.keras.Model, feature_set: FeatureSet) -> dict[str, Any]:
    elwc_spec = [tf.TensorSpec([None], tf.string, name=SERVING_INPUT_KEY)]

    @tf.function(input_signature=elwc_spec)
    def serve_elwc(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        features, _ = raw_to_model_inputs(examples, feature_set, model.tft_layer, list_size=None)
        return {"scores": _masked_scores(model, features), "mask": features[MASK_KEY]}

    @tf.function(input_signature=elwc_spec)
    def transform_elwc(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        features, _ = raw_to_model_inputs(examples, feature_set, model.tft_layer, list_size=None)
        return features

    model_features = feature_set.context + feature_set.document

    @tf.function(input_signature=[_tensor_spec(f) for f in model_features])
    def serve_tensors(*tensors: tf.Tensor) -> dict[str, tf.Tensor]:
        raw = tensors_to_raw({f.name: t for f, t in zip(model_features, tensors, strict=True)}, feature_set)
        features, _ = densify(model.tft_layer(raw), feature_set)
        return {"scores": _masked_scores(model, features)[0]}

    return {
        ELWC_SIGNATURE: serve_elwc.get_concrete_function(),
        TENSORS_SIGNATURE: serve_tensors.get_concrete_function(),
        TRANSFORM_SIGNATURE: transform_elwc.get_concrete_function(),
    }


def export_serving_model(
    model: tf.keras.Model, tft_layer: tf.keras.layers.Layer, feature_set: FeatureSet, path: str
) -> None:
    model.tft_layer = tft_layer  # Tracked, so the Transform graph is saved with the model.
    model.save(path, save_format="tf", signatures=make_signatures(model, feature_set))
