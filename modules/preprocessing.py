"""Transform's ``preprocessing_fn``: schema defaults, then signed log1p.

Runs inside the TFX Transform component on the DataView-decoded ELWC tensors
(see ``modules.elwc_decoder``), and the same graph is embedded in the served
model, so missing values are filled identically in training and serving.

Inputs: context features ragged ``[B, (values)]``; document features ragged
``[B, (docs), (values)]``, where a missing value is an empty inner list.
Outputs: context features dense ``[B]`` float32; document features and the
label ragged ``[B, (docs)]`` float32 (a document without label gets -1, which
TF-Ranking treats as padding).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from modules.features import Feature, FeatureSet, Transform, feature_set_from_schema

# custom_config key holding the schema text, so the function needs no file access
# (Transform ignores its Schema input for FORMAT_PROTO data).
SCHEMA_CONFIG_KEY = "schema_pbtxt"
MISSING_LABEL = -1.0


def signed_log1p(x: tf.Tensor) -> tf.Tensor:
    """``log1p(|x|) * sign(x)``: compresses counts and prices, keeps the sign."""
    return tf.math.sign(x) * tf.math.log1p(tf.math.abs(x))


def _first_or(values: tf.RaggedTensor, default: float) -> tf.Tensor:
    """First value of each row of a ragged ``[N, (values)]``, ``default`` where empty."""
    values = tf.cast(values, tf.float32)
    return values.to_tensor(default_value=default, shape=[None, 1])[:, 0]


def _apply(feature: Feature, x: tf.Tensor) -> tf.Tensor:
    if feature.transform == Transform.LOG1P:
        return signed_log1p(x)
    return x


def transform_context(feature: Feature, raw: tf.RaggedTensor) -> tf.Tensor:
    return _apply(feature, _first_or(raw, feature.default))


def transform_document(feature: Feature, raw: tf.RaggedTensor) -> tf.RaggedTensor:
    return raw.with_values(_apply(feature, _first_or(raw.values, feature.default)))


def transform_features(inputs: dict[str, Any], feature_set: FeatureSet) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for feature in feature_set.context:
        outputs[feature.name] = transform_context(feature, inputs[feature.name])
    for feature in feature_set.document:
        outputs[feature.name] = transform_document(feature, inputs[feature.name])
    label = feature_set.label
    if label.name in inputs:  # Absent at serving time.
        raw = inputs[label.name]
        outputs[label.name] = raw.with_values(_first_or(raw.values, MISSING_LABEL))
    return outputs


def feature_set_from_config(custom_config: dict[str, Any] | None) -> FeatureSet:
    if not custom_config or SCHEMA_CONFIG_KEY not in custom_config:
        raise ValueError(f"Transform custom_config must carry '{SCHEMA_CONFIG_KEY}' (the schema text)")
    schema = text_format.Parse(custom_config[SCHEMA_CONFIG_KEY], schema_pb2.Schema())
    return feature_set_from_schema(schema)


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, Any]:
    """tf.Transform entry point (traced several times: keep it side-effect free)."""
    return transform_features(inputs, feature_set_from_config(custom_config))
