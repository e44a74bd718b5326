"""What tuner_fn and run_fn share: the feature set, the Transform layer, the datasets."""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tensorflow_transform as tft

from modules.features import FeatureSet, load_feature_set
from modules.model_inputs import make_dataset
from modules.training_config import TrainingConfig


@dataclasses.dataclass
class FnInputs:
    feature_set: FeatureSet
    tft_output: tft.TFTransformOutput
    config: TrainingConfig

    @classmethod
    def from_fn_args(cls, fn_args) -> FnInputs:
        return cls(
            feature_set=load_feature_set(fn_args.schema_path),
            tft_output=tft.TFTransformOutput(fn_args.transform_graph_path),
            config=TrainingConfig.from_custom_config(fn_args.custom_config),
        )

    def dataset(self, files: list[str], train: bool) -> tf.data.Dataset:
        """Training data repeats and shuffles; evaluation data is one full pass."""
        tft_layer = self.tft_output.transform_features_layer()
        return make_dataset(
            files,
            self.feature_set,
            tft_layer,
            batch_size=self.config.batch_size,
            list_size=self.config.list_size,
            shuffle=train,
            repeat=train,
            seed=self.config.seed,
        )
