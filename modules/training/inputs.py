"""Training inputs: from ExampleGen's ELWC files to the dense batches the model takes.

One code path for the Tuner, the Trainer and the serving signature: decode
(``modules.transform.decoder``) -> Transform graph -> densify to ``[B, L]`` with
a mask. ``FnInputs`` bundles what ``tuner_fn`` and ``run_fn`` read from their
artifacts (feature set, Transform output, training config) and builds the
(distributed) datasets.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from modules.features import CONTEXT_BLOCK, DOCUMENT_BLOCK, MASK_KEY, FeatureSet, Role, load_feature_set
from modules.training.config import TrainingConfig
from modules.training.position_bias import POSITION_KEY, PositionBias
from modules.transform.decoder import decode_elwc
from modules.transform.preprocessing import MISSING_LABEL

TransformFn = Callable[[dict[str, Any]], dict[str, Any]]
# The training shuffle buffer holds serialized lists: at most this many bytes of them
# (and at most SHUFFLE_LISTS lists), so its memory does not grow with the split.
SHUFFLE_BUFFER_BYTES = 64 << 20
SHUFFLE_LISTS = 4096
_SIZE_PROBE_LISTS = 64
# A split whose serialized lists take at most this many bytes is decoded and transformed
# once and kept in memory (as float32 Transform outputs: a fraction of the serialized size,
# about a quarter on MSLR-shaped lists); training then reshuffles and resamples the cached
# lists every epoch instead of decoding them again. Larger splits stream from the files.
CACHE_SERIALIZED_BYTES = 1 << 30
# Validation and evaluation batches hold full lists, padded to the longest of the batch, so
# the model's activations grow with lists x longest list: at most this many lists per batch
# (the metrics are means over lists, whatever the batching). On MSLR-shaped lists (~120
# documents, up to ~250) 8 instead of 32 took a DASALC model's validation peak from ~110 to
# ~20 MiB over its start.
EVAL_BATCH_LISTS = 8


@dataclasses.dataclass(frozen=True)
class ModelInputs:
    """What the model takes, from the schema and what Transform made of it.

    ``context_block`` / ``document_block``: widths of the numeric blocks (0: none);
    ``context_ids`` / ``document_ids``: feature -> number of ids, for the features
    Transform turned into ids (bucketize, vocabulary), embedded by the model.
    """

    context_block: int
    document_block: int
    context_ids: dict[str, int]
    document_ids: dict[str, int]
    # Training on clicks: the position-bias correction (None: none; never at serving).
    position_bias: PositionBias | None = None

    @property
    def for_serving(self) -> ModelInputs:
        return dataclasses.replace(self, position_bias=None)

    @classmethod
    def from_feature_set(cls, feature_set: FeatureSet, ids: dict[str, int]) -> ModelInputs:
        """``ids``: the id features and their counts; every other numeric feature is in its block."""
        widths = {
            role: sum(f.name not in ids for f in feature_set.numeric(role)) for role in (Role.CONTEXT, Role.DOCUMENT)
        }
        return cls(
            context_block=widths[Role.CONTEXT],
            document_block=widths[Role.DOCUMENT],
            context_ids={f.name: ids[f.name] for f in feature_set.context if f.name in ids},
            document_ids={f.name: ids[f.name] for f in feature_set.document if f.name in ids},
        )

    @classmethod
    def from_transform_output(cls, feature_set: FeatureSet, tft_output: tft.TFTransformOutput) -> ModelInputs:
        spec = tft_output.transformed_feature_spec()
        model_features = feature_set.context + feature_set.document
        ids = {
            f.name: tft_output.num_buckets_for_transformed_feature(f.name)
            for f in model_features
            if f.name in spec and spec[f.name].dtype == tf.int64
        }
        return cls.from_feature_set(feature_set, ids)

    @property
    def document_keys(self) -> list[str]:
        return ([DOCUMENT_BLOCK] if self.document_block else []) + list(self.document_ids)

    @property
    def context_keys(self) -> list[str]:
        return ([CONTEXT_BLOCK] if self.context_block else []) + list(self.context_ids)


def sample_documents(transformed: dict[str, Any], keys: list[str], list_size: int, seed: tf.Tensor) -> dict[str, Any]:
    """At most ``list_size`` documents of each list, drawn uniformly without replacement, in random order.

    As TF-Ranking's ``shuffle_examples``: the documents of each list are shuffled
    (a random key per document, sorted within its list), then ``densify`` keeps
    the first ``list_size``. A new ``seed`` (``[2]`` int) per batch and epoch gives a
    new draw, so over epochs every document of a long list is seen. ``keys``: the
    ragged ``[B, (docs), ...]`` outputs to permute together (features and label).
    """
    rows = transformed[keys[0]]
    row_ids = tf.cast(rows.value_rowids(), tf.float64)
    noise = tf.random.stateless_uniform(tf.shape(row_ids), seed=seed, dtype=tf.float64)
    order = tf.argsort(row_ids + noise)  # list by list, documents in random order
    sampled = dict(transformed)
    for key in keys:
        ragged = transformed[key]
        sampled[key] = ragged.with_values(tf.gather(ragged.values, order))
    return sampled


def densify(
    transformed: dict[str, Any], model_inputs: ModelInputs, label_key: str, list_size: int | None = None
) -> tuple[dict[str, tf.Tensor], tf.Tensor | None]:
    """Pads ragged document outputs to ``[B, L, width]`` plus a ``[B, L]`` mask.

    Documents: the numeric block ``[B, (docs), D]`` -> ``[B, L, D]``, each id
    feature ``[B, (docs)]`` -> ``[B, L, 1]``; context: the block ``[B, C]`` as is,
    each id feature ``[B]`` -> ``[B, 1]``. ``list_size`` truncates longer lists
    (training); ``None`` keeps every document (serving). Returns (features,
    labels); labels are ``[B, L]`` with -1 padding, or None when the label is
    absent (serving).
    """

    def clip(ragged: tf.RaggedTensor) -> tf.RaggedTensor:
        return ragged if list_size is None else ragged[:, :list_size]

    def pad(ragged: tf.RaggedTensor, default: float) -> tf.Tensor:
        # Without list_size, to_tensor pads to the longest list of the batch.
        # Padding is masked out; for id features it is simply id 0.
        shape = [None, list_size] + ragged.shape[2:].as_list()
        return clip(ragged).to_tensor(default_value=tf.cast(default, ragged.dtype), shape=shape)

    features: dict[str, tf.Tensor] = {}
    if model_inputs.document_block:
        features[DOCUMENT_BLOCK] = pad(transformed[DOCUMENT_BLOCK], 0.0)
    for name in model_inputs.document_ids:
        features[name] = tf.expand_dims(pad(transformed[name], 0), -1)
    first = model_inputs.document_keys[0]
    lengths = clip(transformed[first]).row_lengths()
    features[MASK_KEY] = tf.sequence_mask(lengths, maxlen=tf.shape(features[first], tf.int64)[1])
    if model_inputs.context_block:
        features[CONTEXT_BLOCK] = transformed[CONTEXT_BLOCK]
    for name in model_inputs.context_ids:
        features[name] = tf.expand_dims(transformed[name], -1)
    labels = None
    if label_key in transformed:
        labels = pad(transformed[label_key], MISSING_LABEL)
    return features, labels


def transform_lists(
    serialized: tf.Tensor, feature_set: FeatureSet, model_inputs: ModelInputs, transform_fn: TransformFn
) -> dict[str, Any]:
    """Serialized ELWC ``[B]`` -> the Transform outputs, ragged ``[B, (docs), ...]`` (plus positions)."""
    decoded = decode_elwc(serialized, feature_set)
    transformed = transform_fn(decoded)
    bias = model_inputs.position_bias
    if bias is not None:
        transformed = bias.add_positions(transformed, decoded)
    return transformed


def lists_to_model_inputs(
    transformed: dict[str, Any],
    feature_set: FeatureSet,
    model_inputs: ModelInputs,
    list_size: int | None = None,
    sample_seed: tf.Tensor | None = None,
) -> tuple[dict[str, tf.Tensor], tf.Tensor | None]:
    """Transform outputs -> (model features, labels): sampled (training) and densified."""
    bias = model_inputs.position_bias
    label = feature_set.label.name
    if list_size is not None and sample_seed is not None:
        keys = model_inputs.document_keys + [k for k in (label, POSITION_KEY) if k in transformed]
        transformed = sample_documents(transformed, keys, list_size, sample_seed)
    features, labels = densify(transformed, model_inputs, label, list_size)
    if bias is not None:
        return bias.finish(transformed, features, labels, list_size)
    return features, labels


def raw_to_model_inputs(
    serialized: tf.Tensor,
    feature_set: FeatureSet,
    model_inputs: ModelInputs,
    transform_fn: TransformFn,
    list_size: int | None = None,
    sample_seed: tf.Tensor | None = None,
) -> tuple[dict[str, tf.Tensor], tf.Tensor | None]:
    """Serialized ELWC ``[B]`` -> (model features, labels).

    ``list_size`` (training): each list is cut to that many documents, sampled at
    random with ``sample_seed`` (see ``sample_documents``); ``None`` (validation,
    serving): full lists, padded to the longest of the batch and masked.
    """
    transformed = transform_lists(serialized, feature_set, model_inputs, transform_fn)
    return lists_to_model_inputs(transformed, feature_set, model_inputs, list_size, sample_seed)


def _mean_list_bytes(files: list[str]) -> float:
    """Mean serialized size of the first lists of ``files``."""
    # init_scope: eager even where the dataset is built inside a tf.function (ParameterServerStrategy's
    # per-worker dataset_fn), so the probe reads the files once, here.
    with tf.init_scope():
        probe = tf.data.TFRecordDataset(files, compression_type="GZIP").take(_SIZE_PROBE_LISTS)
        sizes = [len(record) for record in probe.as_numpy_iterator()]
    return max(sum(sizes) / len(sizes), 1.0) if sizes else 1.0


def shuffle_buffer_lists(files: list[str], budget_bytes: int = SHUFFLE_BUFFER_BYTES) -> int:
    """Lists in the training shuffle buffer: ``budget_bytes`` over the mean size of the first lists, 16..4096."""
    return int(min(SHUFFLE_LISTS, max(16, budget_bytes // _mean_list_bytes(files))))


def cached_lists(files: list[str], num_shards: int = 1, budget_bytes: int | None = None) -> int | None:
    """The number of lists to cache in memory when this input pipeline's share of ``files``
    takes at most ``budget_bytes`` (default ``CACHE_SERIALIZED_BYTES``) serialized, estimated
    from the first lists; else None (the split streams from the files)."""
    budget_bytes = CACHE_SERIALIZED_BYTES if budget_bytes is None else budget_bytes
    files = split_files(files)  # patterns, as the Trainer has them
    with tf.init_scope():
        lists = math.ceil(count_records(files) / max(1, num_shards))
    return lists if lists * _mean_list_bytes(files) <= budget_bytes else None


def split_files(file_pattern: str | list[str]) -> list[str]:
    """The files of a split, sorted, from a pattern or a list of them (as TFX passes them)."""
    patterns = [file_pattern] if isinstance(file_pattern, str) else file_pattern
    files = sorted(path for pattern in patterns for path in tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no ELWC files match {file_pattern}")
    return files


def make_dataset(
    file_pattern: str | list[str],
    feature_set: FeatureSet,
    model_inputs: ModelInputs,
    transform_fn: TransformFn,
    batch_size: int,
    list_size: int | None,
    shuffle: bool,
    repeat: bool,
    seed: int = 0,
    num_shards: int = 1,
    shard_index: int = 0,
    cache: bool = True,
    decoded: dict | None = None,
) -> tf.data.Dataset:
    """A ``tf.data`` pipeline over ExampleGen's GZIP TFRecords of ELWC.

    ``list_size``: training samples that many documents of each list, afresh for
    every batch of every epoch (``sample_documents``); ``None`` keeps full lists
    (validation: the NDCG of the whole list, as the evaluator computes it).
    ``num_shards``/``shard_index``: distributed training reads every
    ``num_shards``-th list from ``shard_index`` on, before decoding, so each
    input pipeline decodes only its own lists. The shuffle buffer holds about
    ``SHUFFLE_BUFFER_BYTES`` of lists (``shuffle_buffer_lists``), not the whole split.
    ``cache``: a split small enough (``cached_lists``) is decoded and transformed once and
    replayed from memory (training: reshuffled and resampled each epoch; evaluation: the
    lists in order, batched and padded on the fly). ``decoded``: where to keep those decoded
    lists (a dict, see ``FnInputs``), so that every dataset over the same lists made in this
    process (each trial, each ensemble member, the trees' pass, validation and the final
    evaluation) replays one copy instead of decoding and holding its own.
    """
    files = split_files(file_pattern)
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if num_shards > 1:
        records = records.shard(num_shards, shard_index)
    if cache:
        where = (files, num_shards, shard_index)
        lists = _decoded_lists(records, *where, feature_set, model_inputs, transform_fn, decoded)
        if lists is not None:
            cached, count = lists
            order = (seed, shard_index, count) if shuffle else None
            return _replayed_dataset(cached, feature_set, model_inputs, batch_size, list_size, repeat, order)
    dataset = records
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer_lists(files), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=repeat)
    # Batch i of the (repeated) stream draws its documents with the stateless seed
    # (seed, shard, i): reproducible whatever the parallelism, new at every epoch.
    dataset = dataset.enumerate()
    dataset = dataset.map(
        lambda i, records: raw_to_model_inputs(
            records, feature_set, model_inputs, transform_fn, list_size, tf.stack([seed * 1009 + shard_index, i])
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _decoded_lists(
    records: tf.data.Dataset,
    files: list[str],
    num_shards: int,
    shard_index: int,
    feature_set: FeatureSet,
    model_inputs: ModelInputs,
    transform_fn: TransformFn,
    decoded: dict | None,
) -> tuple[tf.data.Dataset, int] | None:
    """The Transform outputs of every list of ``records`` (only what the model and the loss read),
    cached in memory on first use, and their number; None when the lists are too many bytes
    for memory (``cached_lists``). Kept in ``decoded`` by (files, shard) where the dataset is
    built eagerly (a dataset built inside a ``tf.function``, as ParameterServerStrategy's
    workers build theirs, cannot outlive it)."""
    key = (tuple(files), num_shards, shard_index)
    if not tf.executing_eagerly():
        decoded = None
    if decoded is not None and key in decoded:
        return decoded[key]
    count = cached_lists(files, num_shards)
    lists = None
    if count is not None:
        keep = [*model_inputs.document_keys, *model_inputs.context_keys, feature_set.label.name, POSITION_KEY]
        cached = records.batch(64).map(
            lambda batch: {
                k: v for k, v in transform_lists(batch, feature_set, model_inputs, transform_fn).items() if k in keep
            },
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        lists = (cached.unbatch().cache(), count)
    if decoded is not None:
        decoded[key] = lists
    return lists


def _replayed_dataset(
    cached: tf.data.Dataset,
    feature_set: FeatureSet,
    model_inputs: ModelInputs,
    batch_size: int,
    list_size: int | None,
    repeat: bool,
    shuffle: tuple[int, int, int] | None = None,
) -> tf.data.Dataset:
    """Batches of the lists decoded once and kept in memory (``_decoded_lists``), densified.

    ``shuffle`` (training): ``(seed, shard_index, lists)``: each epoch reshuffles all the
    lists (the whole cached split is the shuffle buffer) and batch ``i`` samples its
    documents with the stateless seed (seed, shard, i), as the streaming path does.
    None (evaluation): the lists in their order, full lists unless ``list_size``.
    """
    dataset = cached
    if shuffle is not None:
        seed, shard_index, lists = shuffle
        dataset = dataset.shuffle(lists, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.ragged_batch(batch_size, drop_remainder=repeat).enumerate()

    def to_model_inputs(i, lists_):
        sample_seed = None if shuffle is None else tf.stack([seed * 1009 + shard_index, i])
        return lists_to_model_inputs(lists_, feature_set, model_inputs, list_size, sample_seed)

    dataset = dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def count_records(patterns: list[str]) -> int:
    """Number of lists (ELWC records) in ExampleGen's GZIP TFRecord files."""
    dataset = tf.data.TFRecordDataset(split_files(patterns), compression_type="GZIP")
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


@dataclasses.dataclass
class FnInputs:
    feature_set: FeatureSet
    tft_output: tft.TFTransformOutput
    config: TrainingConfig

    @classmethod
    def from_fn_args(cls, fn_args) -> FnInputs:
        return cls.from_paths(fn_args.schema_path, fn_args.transform_graph_path, fn_args.custom_config)

    @classmethod
    def from_paths(cls, schema_path: str, transform_graph_path: str, custom_config: dict[str, Any] | None) -> FnInputs:
        return cls(
            feature_set=load_feature_set(schema_path),
            tft_output=tft.TFTransformOutput(transform_graph_path),
            config=TrainingConfig.from_custom_config(custom_config),
            custom_config=dict(custom_config or {}),
        )

    custom_config: dict[str, Any] | None = None
    # The lists decoded once and kept in memory, shared by every dataset these inputs make
    # over the same files (``make_dataset``'s ``decoded``).
    decoded: dict = dataclasses.field(default_factory=dict, repr=False)

    @functools.cached_property
    def model_inputs(self) -> ModelInputs:
        """What training feeds the model (with the position-bias correction); ``.for_serving`` at export."""
        model_inputs = ModelInputs.from_transform_output(self.feature_set, self.tft_output)
        bias = PositionBias.from_config(
            self.config.position_bias,
            self.feature_set,
            model_inputs,
            self.custom_config,
            ipw_max_weight=self.config.ipw_max_weight,
            bias_features=self.config.bias_features,
        )
        return dataclasses.replace(model_inputs, position_bias=bias)

    def dataset(
        self,
        files: list[str],
        train: bool,
        batch_size: int | None = None,
        num_shards: int = 1,
        shard_index: int = 0,
        seed: int | None = None,
    ) -> tf.data.Dataset:
        """Training data repeats, shuffles and samples ``list_size`` documents per list;
        evaluation data is one full pass over full lists. ``batch_size``: default
        ``training.batch_size`` (training), ``eval_batch_size`` (evaluation). ``seed``: default ``training.seed``."""
        tft_layer = self.tft_output.transform_features_layer()
        return make_dataset(
            files,
            self.feature_set,
            self.model_inputs,
            tft_layer,
            batch_size=batch_size or (self.config.batch_size if train else self.eval_batch_size),
            list_size=self.config.list_size if train else None,
            shuffle=train,
            repeat=train,
            seed=self.config.seed if seed is None else seed,
            num_shards=num_shards,
            shard_index=shard_index,
            decoded=self.decoded,
        )

    @property
    def eval_batch_size(self) -> int:
        """Lists per evaluation batch (per replica): ``training.batch_size``, at most ``EVAL_BATCH_LISTS``."""
        return min(self.config.batch_size, EVAL_BATCH_LISTS)

    def in_memory(self, files: list[str]) -> bool:
        """Whether the lists of ``files`` are replayed from memory (``cached_lists``) by this
        process's datasets over them (decided, and remembered, by making one)."""
        return self._decoded(files) is not None

    def count_lists(self, files: list[str]) -> int:
        """Number of lists in ``files``: as counted when deciding to keep them in memory, else counted now."""
        decoded = self._decoded(files)
        return decoded[1] if decoded is not None else count_records(files)

    def _decoded(self, files: list[str]) -> tuple[tf.data.Dataset, int] | None:
        self.dataset(files, train=False)
        return self.decoded.get((tuple(split_files(files)), 1, 0))

    def input_fn(self, files: list[str], train: bool, global_batch_size: int, seed: int | None = None):
        """A ``dataset_fn(InputContext)`` for ``strategy.distribute_datasets_from_function``.

        Every replica gets ``global_batch_size / replicas`` lists per step. Training:
        each input pipeline (one per worker) reads only its own shard of the lists.
        Evaluation: every pipeline reads all lists, so every worker runs the same
        number of steps; metrics are summed over replicas before the mean, so the
        result is the exact NDCG over the eval split (the eval set is small, the
        duplicated work is cheap).
        """

        def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            shard = train and context.num_input_pipelines > 1
            return self.dataset(
                files,
                train=train,
                batch_size=context.get_per_replica_batch_size(global_batch_size),
                num_shards=context.num_input_pipelines if shard else 1,
                shard_index=context.input_pipeline_id if shard else 0,
                seed=seed,
            )

        return dataset_fn

    def distributed_dataset(
        self,
        strategy: tf.distribute.Strategy,
        files: list[str],
        train: bool,
        global_batch: int,
        seed: int | None = None,
    ) -> tf.distribute.DistributedDataset:
        return strategy.distribute_datasets_from_function(self.input_fn(files, train, global_batch, seed))
