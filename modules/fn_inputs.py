"""What tuner_fn and run_fn share: the feature set, the Transform layer, the datasets."""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from modules.features import FeatureSet, load_feature_set
from modules.model_inputs import make_dataset
from modules.training_config import TrainingConfig


def count_records(patterns: list[str]) -> int:
    """Number of lists (ELWC records) in ExampleGen's GZIP TFRecord files."""
    files = sorted(path for pattern in patterns for path in tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no ELWC files match {patterns}")
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
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
        )

    @property
    def categorical(self) -> dict[str, int]:
        """Model features that Transform turned into ids (bucketize, vocabulary) -> number of ids."""
        spec = self.tft_output.transformed_feature_spec()
        features = self.feature_set.context + self.feature_set.document
        return {
            f.name: self.tft_output.num_buckets_for_transformed_feature(f.name)
            for f in features
            if spec[f.name].dtype == tf.int64
        }

    def dataset(
        self, files: list[str], train: bool, batch_size: int | None = None, num_shards: int = 1, shard_index: int = 0
    ) -> tf.data.Dataset:
        """Training data repeats and shuffles; evaluation data is one full pass."""
        tft_layer = self.tft_output.transform_features_layer()
        return make_dataset(
            files,
            self.feature_set,
            tft_layer,
            batch_size=batch_size or self.config.batch_size,
            list_size=self.config.list_size,
            shuffle=train,
            repeat=train,
            seed=self.config.seed,
            num_shards=num_shards,
            shard_index=shard_index,
        )

    def input_fn(self, files: list[str], train: bool, global_batch_size: int):
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
            )

        return dataset_fn

    def distributed_dataset(self, strategy: tf.distribute.Strategy, files: list[str], train: bool, global_batch: int):
        return strategy.distribute_datasets_from_function(self.input_fn(files, train, global_batch))
