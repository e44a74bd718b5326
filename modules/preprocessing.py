"""Transform's ``preprocessing_fn``: schema defaults, then each feature's transform.

Runs inside the TFX Transform component on the DataView-decoded ELWC tensors
(see ``modules.elwc_decoder``); the same graph is embedded in the served model,
so missing values are filled identically in training and serving.

Inputs: context features ragged ``[B, (values)]``; document features ragged
``[B, (docs), (values)]``, where a missing value is an empty inner list.
Outputs: context features dense ``[B]``; document features and the label ragged
``[B, (docs)]``. Numeric transforms give float32, ``bucketize`` and
``vocabulary`` int64 ids (TFT records their bucket counts in the output schema,
which the model reads to size its embeddings). A document without label gets
-1, which TF-Ranking treats as padding.

Full-pass analyzers (``zscore``, ``bucketize``, ``vocabulary``) run over the
values of all documents (or all lists, for context features) after defaults
are filled, never over padding.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from modules.features import (
    Dtype,
    Feature,
    FeatureSet,
    SchemaError,
    Transform,
    check_transform,
    feature_set_from_schema,
)

# custom_config keys: the schema text (Transform ignores its Schema input for
# FORMAT_PROTO data, so the function gets it here) and per-feature overrides.
SCHEMA_CONFIG_KEY = "schema_pbtxt"
OVERRIDES_CONFIG_KEY = "transform_overrides"
MISSING_LABEL = -1.0


def signed_log1p(x: tf.Tensor) -> tf.Tensor:
    """``log1p(|x|) * sign(x)``: compresses counts and prices, keeps the sign."""
    return tf.math.sign(x) * tf.math.log1p(tf.math.abs(x))


def _first_or_default(values: tf.RaggedTensor, feature: Feature) -> tf.Tensor:
    """First value of each row of a ragged ``[N, (values)]``, the feature's default where empty."""
    if feature.dtype == Dtype.BYTES:
        return values.to_tensor(default_value=str(feature.default), shape=[None, 1])[:, 0]
    return tf.cast(values, tf.float32).to_tensor(default_value=float(feature.default), shape=[None, 1])[:, 0]


def _apply(feature: Feature, x: tf.Tensor) -> tf.Tensor:
    """The feature's transform on a flat tensor of filled values (one per document or list)."""
    if feature.transform == Transform.LOG1P:
        return signed_log1p(x)
    if feature.transform == Transform.ZSCORE:
        return tft.scale_to_z_score(x, name=f"zscore_{feature.name}")
    if feature.transform == Transform.BUCKETIZE:
        return tft.bucketize(x, num_buckets=feature.buckets, name=f"bucketize_{feature.name}")
    if feature.transform == Transform.VOCABULARY:
        return tft.compute_and_apply_vocabulary(
            x, num_oov_buckets=feature.oov_buckets, vocab_filename=f"vocab_{feature.name}", name=f"vocab_{feature.name}"
        )
    return x


def transform_context(feature: Feature, raw: tf.RaggedTensor) -> tf.Tensor:
    return _apply(feature, _first_or_default(raw, feature))


def transform_document(feature: Feature, raw: tf.RaggedTensor) -> tf.RaggedTensor:
    return raw.with_values(_apply(feature, _first_or_default(raw.values, feature)))


def transform_features(inputs: dict[str, Any], feature_set: FeatureSet) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for feature in feature_set.context:
        outputs[feature.name] = transform_context(feature, inputs[feature.name])
    for feature in feature_set.document:
        outputs[feature.name] = transform_document(feature, inputs[feature.name])
    label = feature_set.label
    if label.name in inputs:  # Absent at serving time.
        raw = inputs[label.name]
        values = tf.cast(raw.values, tf.float32).to_tensor(default_value=MISSING_LABEL, shape=[None, 1])[:, 0]
        outputs[label.name] = raw.with_values(values)
    return outputs


def apply_overrides(feature_set: FeatureSet, overrides: dict[str, str] | None) -> FeatureSet:
    """Per-feature transforms from the pipeline config, over the schema's."""
    if not overrides:
        return feature_set
    features = {f.name: f for f in feature_set.features}
    for name, value in overrides.items():
        if name not in features or not features[name].is_model_input:
            raise SchemaError(f"transform override for '{name}': no such context or document feature in the schema")
        try:
            transform = Transform(value)
        except ValueError:
            raise SchemaError(f"transform override for '{name}': unknown transform '{value}'") from None
        check_transform(name, features[name].dtype, transform)
        features[name] = dataclasses.replace(features[name], transform=transform)
    return FeatureSet(tuple(features.values()))


def feature_set_from_config(custom_config: dict[str, Any] | None) -> FeatureSet:
    if not custom_config or SCHEMA_CONFIG_KEY not in custom_config:
        raise ValueError(f"Transform custom_config must carry '{SCHEMA_CONFIG_KEY}' (the schema text)")
    schema = text_format.Parse(custom_config[SCHEMA_CONFIG_KEY], schema_pb2.Schema())
    return apply_overrides(feature_set_from_schema(schema), custom_config.get(OVERRIDES_CONFIG_KEY))


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, Any]:
    """tf.Transform entry point (traced several times: keep it side-effect free)."""
    return transform_features(inputs, feature_set_from_config(custom_config))
