"""From serialized ELWC to the dense tensors a TF-Ranking Keras model takes.

One code path for the Tuner, the Trainer and the serving signature: decode
(``elwc_decoder``) -> Transform graph -> densify to ``[B, L]`` with a mask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from modules.elwc_decoder import decode_elwc
from modules.features import MASK_KEY, FeatureSet
from modules.preprocessing import MISSING_LABEL

TransformFn = Callable[[dict[str, Any]], dict[str, Any]]


def densify(
    transformed: dict[str, Any], feature_set: FeatureSet, list_size: int | None = None
) -> tuple[dict[str, tf.Tensor], tf.Tensor | None]:
    """Pads ragged ``[B, (docs)]`` outputs to ``[B, L, 1]`` plus a ``[B, L]`` mask.

    ``list_size`` truncates longer lists (training); ``None`` keeps every document
    (serving). Returns (features, labels); labels are ``[B, L]`` with -1 padding,
    or None when the label is absent (serving).
    """

    def clip(ragged: tf.RaggedTensor) -> tf.RaggedTensor:
        return ragged if list_size is None else ragged[:, :list_size]

    def pad(ragged: tf.RaggedTensor, default: float) -> tf.Tensor:
        # Without list_size, to_tensor pads to the longest list of the batch.
        # Padding is masked out; for id features it is simply id 0.
        return clip(ragged).to_tensor(default_value=tf.cast(default, ragged.dtype), shape=[None, list_size])

    features: dict[str, tf.Tensor] = {
        f.name: tf.expand_dims(pad(transformed[f.name], 0.0), -1) for f in feature_set.document
    }
    lengths = clip(transformed[feature_set.document[0].name]).row_lengths()
    width = tf.shape(features[feature_set.document[0].name], tf.int64)[1]
    features[MASK_KEY] = tf.sequence_mask(lengths, maxlen=width)
    for feature in feature_set.context:
        features[feature.name] = tf.expand_dims(transformed[feature.name], -1)
    labels = None
    if feature_set.label.name in transformed:
        labels = pad(transformed[feature_set.label.name], MISSING_LABEL)
    return features, labels


def raw_to_model_inputs(
    serialized: tf.Tensor,
    feature_set: FeatureSet,
    transform_fn: TransformFn,
    list_size: int | None = None,
) -> tuple[dict[str, tf.Tensor], tf.Tensor | None]:
    """Serialized ELWC ``[B]`` -> (model features, labels)."""
    return densify(transform_fn(decode_elwc(serialized, feature_set)), feature_set, list_size)


def make_dataset(
    file_pattern: str | list[str],
    feature_set: FeatureSet,
    transform_fn: TransformFn,
    batch_size: int,
    list_size: int,
    shuffle: bool,
    repeat: bool,
    seed: int = 0,
    num_shards: int = 1,
    shard_index: int = 0,
) -> tf.data.Dataset:
    """A ``tf.data`` pipeline over ExampleGen's GZIP TFRecords of ELWC.

    ``num_shards``/``shard_index``: distributed training reads every
    ``num_shards``-th list from ``shard_index`` on, before decoding, so each
    input pipeline decodes only its own lists.
    """
    files = (
        tf.io.gfile.glob(file_pattern)
        if isinstance(file_pattern, str)
        else [path for pattern in file_pattern for path in tf.io.gfile.glob(pattern)]
    )
    if not files:
        raise FileNotFoundError(f"no ELWC files match {file_pattern}")
    dataset = tf.data.TFRecordDataset(sorted(files), compression_type="GZIP")
    if num_shards > 1:
        dataset = dataset.shard(num_shards, shard_index)
    if shuffle:
        dataset = dataset.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=repeat)
    dataset = dataset.map(
        lambda records: raw_to_model_inputs(records, feature_set, transform_fn, list_size),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)
