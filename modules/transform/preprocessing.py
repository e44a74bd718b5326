"""Transform's ``preprocessing_fn``: schema defaults, then each feature's transform.

Runs inside the TFX Transform component on the DataView-decoded ELWC tensors
(see ``modules.transform.decoder``); the same graph is embedded in the served
model, so missing values are filled identically in training and serving.

Numeric features (the bulk: 100-700 of them on LETOR data) are handled as one
block per role, ``[N, F]`` for the N lists (context) or the N documents of all
lists (the ragged block's values, so never padding): the defaults as one vector
wherever a value is missing, NaN or infinite; signed log1p, passthrough and
z-score (one element-wise analyzer: a mean and variance per column) as whole-block
ops selected per column. Only what must be per feature stays per feature:
``bucketize`` (its own quantiles and bucket count; the column leaves the block and
becomes an id) and string features (``vocabulary``).

Outputs: ``CONTEXT_BLOCK`` dense ``[B, C']``, ``DOCUMENT_BLOCK`` ragged
``[B, (docs), D']`` (the non-bucketized numeric columns, schema order), one id
tensor per bucketized or string feature (context ``[B]``, documents ragged
``[B, (docs)]``, int64: TFT records their bucket counts in the output schema,
which the model reads to size its embeddings), and the label ragged ``[B, (docs)]``
(-1 for a document without label: padding for TF-Ranking).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from modules.features import (
    CONTEXT_BLOCK,
    DOCUMENT_BLOCK,
    Feature,
    FeatureSet,
    Role,
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
    """First value of each row of a ragged ``[N, (values)]`` string feature, the default where empty."""
    return values.to_tensor(default_value=str(feature.default), shape=[None, 1])[:, 0]


def fill_defaults(block: tf.Tensor, features: tuple[Feature, ...]) -> tf.Tensor:
    """``[N, F]`` -> the schema default of column j wherever it is missing (NaN) or not finite."""
    defaults = tf.constant([float(f.default) for f in features], tf.float32)
    return tf.where(tf.math.is_finite(block), block, defaults)


def _column_mask(features: tuple[Feature, ...], transform: Transform) -> tf.Tensor:
    return tf.constant([f.transform == transform for f in features])


def transform_block(filled: tf.Tensor, features: tuple[Feature, ...], name: str) -> tf.Tensor:
    """Each column's transform (log1p, zscore or passthrough) on a filled ``[N, F]`` block."""
    transforms = {f.transform for f in features}
    out = filled
    if Transform.ZSCORE in transforms:
        # One analyzer for the whole block: a mean and a variance per column, over the N rows.
        zscore = tft.scale_to_z_score(filled, elementwise=True, name=f"zscore_{name}")
        out = (
            zscore
            if transforms == {Transform.ZSCORE}
            else tf.where(_column_mask(features, Transform.ZSCORE), zscore, out)
        )
    if Transform.LOG1P in transforms:
        log1p = signed_log1p(filled)
        out = (
            log1p if transforms == {Transform.LOG1P} else tf.where(_column_mask(features, Transform.LOG1P), log1p, out)
        )
    return out


def _transform_numeric(block: tf.Tensor, features: tuple[Feature, ...], name: str) -> tuple[tf.Tensor | None, dict]:
    """A role's raw ``[N, F]`` block -> (the transformed non-bucketized block, {bucketized feature: ids [N]})."""
    filled = fill_defaults(block, features)
    ids = {
        f.name: tft.bucketize(filled[:, j], num_buckets=f.buckets, name=f"bucketize_{f.name}")
        for j, f in enumerate(features)
        if f.transform == Transform.BUCKETIZE
    }
    kept = [j for j, f in enumerate(features) if f.transform != Transform.BUCKETIZE]
    if not kept:
        return None, ids
    if len(kept) < len(features):
        filled = tf.gather(filled, kept, axis=1)
        features = tuple(features[j] for j in kept)
    return transform_block(filled, features, name), ids


def _vocabulary(feature: Feature, values: tf.Tensor) -> tf.Tensor:
    return tft.compute_and_apply_vocabulary(
        values,
        num_oov_buckets=feature.oov_buckets,
        vocab_filename=f"vocab_{feature.name}",
        name=f"vocab_{feature.name}",
    )


def transform_features(inputs: dict[str, Any], feature_set: FeatureSet) -> dict[str, Any]:
    for role, key in ((Role.CONTEXT, CONTEXT_BLOCK), (Role.DOCUMENT, DOCUMENT_BLOCK)):
        if feature_set.numeric(role) and key not in inputs:
            raise ValueError(
                f"the decoded examples have no '{key}' block: their DataView was written by an ElwcExampleGen "
                "older than the vectorized feature path; re-run ElwcExampleGen (e.g. with caching off)"
            )
    outputs: dict[str, Any] = {}
    # Context: one row per list.
    context = feature_set.numeric(Role.CONTEXT)
    if context:
        block, ids = _transform_numeric(inputs[CONTEXT_BLOCK], context, "context")
        if block is not None:
            outputs[CONTEXT_BLOCK] = block
        outputs.update(ids)
    for feature in feature_set.strings(Role.CONTEXT):
        outputs[feature.name] = _vocabulary(feature, _first_or_default(inputs[feature.name], feature))
    # Documents: the ragged block's values are the real documents of all lists.
    document = feature_set.numeric(Role.DOCUMENT)
    if document:
        raw = inputs[DOCUMENT_BLOCK]
        block, ids = _transform_numeric(raw.values, document, "document")
        if block is not None:
            outputs[DOCUMENT_BLOCK] = raw.with_values(block)
        outputs.update({name: raw.with_values(values) for name, values in ids.items()})
    for feature in feature_set.strings(Role.DOCUMENT):
        raw = inputs[feature.name]
        outputs[feature.name] = raw.with_values(_vocabulary(feature, _first_or_default(raw.values, feature)))
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
