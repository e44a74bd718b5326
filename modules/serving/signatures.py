"""Serving signatures of the exported ranking model, Transform graph inside.

- ``serving_default``: serialized ELWC ``[B]`` -> ``scores``/``mask`` ``[B, L]``
  (TF Serving's Predict API, as TF-Ranking users deploy).
- ``predict_tensors``: one raw tensor per feature, the documents of one list
  along the first axis (``[N, 1]``; context features ``[1, 1]``), as in a plain
  TF Serving PredictRequest -> ``scores`` ``[N]``. No ELWC encoding by the client.
- ``transform_features``: serialized ELWC -> the transformed, padded model inputs,
  for checking that serving preprocesses exactly as training did.

Missing values: an absent ELWC feature, a NaN or infinite value, or an empty
``[0, 1]`` tensor all get the schema default inside the graph (the same
Transform graph as training). ``predict_tensors`` stacks its per-feature inputs
into the decoder's numeric block inside the graph.
Only stock TF ops are used (``DecodeProtoV2``, ``ParseExample``, the Transform
graph), so TF Serving loads the model without this project or custom ops.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from modules.features import CONTEXT_BLOCK, DOCUMENT_BLOCK, MASK_KEY, Dtype, Feature, FeatureSet, Role
from modules.training.inputs import ModelInputs, densify, raw_to_model_inputs

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


def _rows(feature: Feature, values: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
    """``[rows or 0, 1]`` -> ``[rows]``; an empty tensor is a missing value on every row."""
    given = tf.shape(values)[0]
    check = tf.debugging.Assert(
        tf.logical_or(tf.equal(given, rows), tf.equal(given, 0)),
        [
            f"feature '{feature.name}' has",
            given,
            "rows but the list has",
            rows,
            "documents: give every feature one row per document, or an empty [0, 1] tensor",
        ],
    )
    missing = tf.constant("" if feature.dtype == Dtype.BYTES else float("nan"), values.dtype)
    with tf.control_dependencies([check]):  # Checked before the columns are stacked.
        return tf.cond(tf.equal(given, 0), lambda: tf.fill([rows], missing), lambda: values[:, 0])


def _numeric_block(inputs: dict[str, tf.Tensor], features: tuple[Feature, ...], rows: tf.Tensor) -> tf.Tensor:
    """The decoder's block ``[rows, F]`` from one ``[rows, 1]`` tensor per feature (NaN: missing)."""
    block = tf.stack([_rows(f, inputs[f.name], rows) for f in features], axis=1)
    # Integer features: the value the ELWC would carry (the decoder reads int64).
    is_int = tf.constant([f.dtype == Dtype.INT for f in features])
    return tf.where(is_int, tf.round(block), block)


def _string_values(feature: Feature, inputs: dict[str, tf.Tensor], rows: tf.Tensor) -> tf.RaggedTensor:
    """``[rows, 1]`` strings -> ragged ``[rows, (0|1)]``, an empty string left out (missing)."""
    column = _rows(feature, inputs[feature.name], rows)
    present = tf.not_equal(column, "")
    return tf.RaggedTensor.from_row_lengths(tf.boolean_mask(column, present), tf.cast(present, tf.int64))


def tensors_to_raw(inputs: dict[str, tf.Tensor], feature_set: FeatureSet) -> dict[str, Any]:
    """Per-feature tensors of one list -> the decoder's layout (blocks and ragged strings) with a batch of 1."""
    documents = feature_set.document
    num_docs = tf.reduce_max(tf.stack([tf.shape(inputs[f.name])[0] for f in documents]))
    one_list = tf.reshape(tf.cast(num_docs, tf.int64), [1])
    raw: dict[str, Any] = {}
    numeric = feature_set.numeric(Role.DOCUMENT)
    if numeric:
        raw[DOCUMENT_BLOCK] = tf.RaggedTensor.from_row_lengths(_numeric_block(inputs, numeric, num_docs), one_list)
    for feature in feature_set.strings(Role.DOCUMENT):
        raw[feature.name] = tf.RaggedTensor.from_row_lengths(_string_values(feature, inputs, num_docs), one_list)
    first = {f.name: t[:1] for f, t in ((f, inputs[f.name]) for f in feature_set.context)}
    numeric = feature_set.numeric(Role.CONTEXT)
    if numeric:
        raw[CONTEXT_BLOCK] = _numeric_block(first, numeric, tf.constant(1))
    for feature in feature_set.strings(Role.CONTEXT):
        raw[feature.name] = _string_values(feature, first, tf.constant(1))
    return raw


def make_signatures(model: tf.keras.Model, feature_set: FeatureSet, model_inputs: ModelInputs) -> dict[str, Any]:
    elwc_spec = [tf.TensorSpec([None], tf.string, name=SERVING_INPUT_KEY)]

    def from_elwc(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        features, _ = raw_to_model_inputs(examples, feature_set, model_inputs, model.tft_layer, list_size=None)
        return features

    @tf.function(input_signature=elwc_spec)
    def serve_elwc(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        features = from_elwc(examples)
        return {"scores": _masked_scores(model, features), "mask": features[MASK_KEY]}

    @tf.function(input_signature=elwc_spec)
    def transform_elwc(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        return from_elwc(examples)

    model_features = feature_set.context + feature_set.document

    @tf.function(input_signature=[_tensor_spec(f) for f in model_features])
    def serve_tensors(*tensors: tf.Tensor) -> dict[str, tf.Tensor]:
        raw = tensors_to_raw({f.name: t for f, t in zip(model_features, tensors, strict=True)}, feature_set)
        features, _ = densify(model.tft_layer(raw), model_inputs, feature_set.label.name)
        return {"scores": _masked_scores(model, features)[0]}

    return {
        ELWC_SIGNATURE: serve_elwc.get_concrete_function(),
        TENSORS_SIGNATURE: serve_tensors.get_concrete_function(),
        TRANSFORM_SIGNATURE: transform_elwc.get_concrete_function(),
    }


def export_serving_model(
    model: tf.keras.Model,
    tft_layer: tf.keras.layers.Layer,
    feature_set: FeatureSet,
    model_inputs: ModelInputs,
    path: str,
) -> None:
    model.tft_layer = tft_layer  # Tracked, so the Transform graph is saved with the model.
    model.save(path, save_format="tf", signatures=make_signatures(model, feature_set, model_inputs))
