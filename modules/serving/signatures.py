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


def _lengths(tensors: list[tf.Tensor]) -> tf.Tensor:
    """Rows of each ``[n, 1]`` tensor, as one int64 vector (one ``ShapeN`` op per dtype)."""
    shapes: dict[int, tf.Tensor] = {}
    for dtype in {t.dtype for t in tensors}:
        positions = [i for i, t in enumerate(tensors) if t.dtype == dtype]
        shapes.update(zip(positions, tf.shape_n([tensors[i] for i in positions], out_type=tf.int64), strict=True))
    return tf.stack([shapes[i] for i in range(len(tensors))])[:, 0]


def _check_rows(lengths: tf.Tensor, names: list[str], rows: tf.Tensor) -> tf.Operation:
    """One check for all features: each tensor has ``rows`` rows, or none (all missing)."""
    bad = tf.logical_and(tf.not_equal(lengths, rows), tf.not_equal(lengths, 0))
    first = tf.argmax(tf.cast(bad, tf.int32))
    return tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad)),
        [
            "feature",
            tf.gather(tf.constant(names), first),
            "has",
            tf.gather(lengths, first),
            "rows but the list has",
            rows,
            "documents: give every feature one row per document, or an empty [0, 1] tensor",
        ],
    )


def _columns(tensors: list[tf.Tensor], rows: tf.Tensor, missing: float | str) -> tf.Tensor:
    """``[n_j, 1]`` tensors -> ``[rows, F]``: column j holds tensor j's first ``rows`` values,
    ``missing`` on every row where tensor j is empty.

    A fixed number of ops whatever F (one concat, one gather), so a 300-feature
    signature traces as fast as an 8-feature one.
    """
    lengths = _lengths(tensors)
    flat = tf.concat([tf.concat(tensors, axis=0)[:, 0], tf.constant([missing], tensors[0].dtype)], axis=0)
    index = tf.cumsum(lengths, exclusive=True)[:, None] + tf.range(rows, dtype=tf.int64)[None, :]
    index = tf.where(lengths[:, None] > 0, index, tf.size(flat, out_type=tf.int64) - 1)  # -> the missing value
    return tf.transpose(tf.gather(flat, index))


def _numeric_block(tensors: list[tf.Tensor], features: tuple[Feature, ...], rows: tf.Tensor) -> tf.Tensor:
    """The decoder's block ``[rows, F]`` (NaN: missing) from one ``[rows, 1]`` tensor per feature."""
    block = _columns(tensors, rows, float("nan"))
    # Integer features: the value the ELWC would carry (the decoder reads int64).
    is_int = tf.constant([f.dtype == Dtype.INT for f in features])
    return tf.where(is_int, tf.round(block), block)


def _string_values(column: tf.Tensor) -> tf.RaggedTensor:
    """``[rows]`` strings -> ragged ``[rows, (0|1)]``, an empty string left out (missing)."""
    present = tf.not_equal(column, "")
    return tf.RaggedTensor.from_row_lengths(tf.boolean_mask(column, present), tf.cast(present, tf.int64))


def _role_to_raw(inputs: dict[str, tf.Tensor], feature_set: FeatureSet, role: Role, rows: tf.Tensor) -> dict:
    """One role's ``rows`` rows: its numeric block ``[rows, F]``, a ragged ``[rows, (0|1)]`` per string feature."""
    raw: dict[str, Any] = {}
    numeric = feature_set.numeric(role)
    if numeric:
        block = _numeric_block([inputs[f.name] for f in numeric], numeric, rows)
        raw[CONTEXT_BLOCK if role == Role.CONTEXT else DOCUMENT_BLOCK] = block
    strings = feature_set.strings(role)
    if strings:
        columns = _columns([inputs[f.name] for f in strings], rows, "")
        raw.update({f.name: _string_values(columns[:, j]) for j, f in enumerate(strings)})
    return raw


def tensors_to_raw(inputs: dict[str, tf.Tensor], feature_set: FeatureSet) -> dict[str, Any]:
    """Per-feature tensors of one list -> the decoder's layout (blocks and ragged strings) with a batch of 1.

    Documents: every tensor has the list's N rows, or none (missing). Context: the
    first row of each tensor, or missing if it has none.
    """
    names = [f.name for f in feature_set.document]
    lengths = _lengths([inputs[name] for name in names])
    num_docs = tf.reduce_max(lengths)
    with tf.control_dependencies([_check_rows(lengths, names, num_docs)]):
        documents = _role_to_raw(inputs, feature_set, Role.DOCUMENT, num_docs)
        context = _role_to_raw(inputs, feature_set, Role.CONTEXT, tf.constant(1, tf.int64))
    one_list = tf.reshape(num_docs, [1])  # documents [N, ...] -> [1, (N), ...]
    return {**context, **{k: tf.RaggedTensor.from_row_lengths(v, one_list) for k, v in documents.items()}}


def make_signatures(
    model: tf.keras.Model, tft_layer: tf.keras.layers.Layer, feature_set: FeatureSet, model_inputs: ModelInputs
) -> dict[str, Any]:
    elwc_spec = [tf.TensorSpec([None], tf.string, name=SERVING_INPUT_KEY)]

    def from_elwc(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        features, _ = raw_to_model_inputs(examples, feature_set, model_inputs, tft_layer, list_size=None)
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
        features, _ = densify(tft_layer(raw), model_inputs, feature_set.label.name)
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
    """Saves the signatures, the model's variables and the Transform graph as a plain SavedModel.

    Not ``model.save``: Keras would also trace and save every layer's call
    functions, which no consumer uses (TF Serving, the evaluator and the
    registry call the signatures) and which made export and load cost seconds
    per feature. Loading needs only TensorFlow (no Keras objects to revive).
    """
    served = tf.Module()
    served.model_variables = list(model.variables)  # Tracked: the signatures read them.
    dependencies = getattr(model, "serving_dependencies", None)
    if dependencies is not None:  # e.g. the trees scorer's forest (TF-DF model resources and assets)
        served.model_dependencies = dependencies
    served.tft_layer = tft_layer  # Tracked, so the Transform graph and its assets are saved.
    tf.saved_model.save(served, path, signatures=make_signatures(model, tft_layer, feature_set, model_inputs))
