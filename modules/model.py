"""The TF-Ranking Keras model: inputs from the schema, a DNN scorer, ranking losses."""

from __future__ import annotations

import keras_tuner as kt
import tensorflow as tf
import tensorflow_ranking as tfr

from modules.features import MASK_KEY, FeatureSet
from modules.hparams import search_space

NDCG_METRIC = "ndcg_10"


def _dense_spec(features) -> dict[str, tf.io.FixedLenFeature]:
    return {f.name: tf.io.FixedLenFeature(shape=(1,), dtype=tf.float32) for f in features}


def ranking_metrics() -> list[tf.keras.metrics.Metric]:
    return [
        tfr.keras.metrics.NDCGMetric(name=NDCG_METRIC, topn=10),
        tfr.keras.metrics.NDCGMetric(name="ndcg_5", topn=5),
        tfr.keras.metrics.NDCGMetric(name="ndcg_1", topn=1),
        tfr.keras.metrics.MRRMetric(name="mrr"),
    ]


def build_model(feature_set: FeatureSet, hp: kt.HyperParameters) -> tf.keras.Model:
    """Builds and compiles the ranking model for transformed, densified inputs.

    Inputs: context features ``[B, 1]``, document features ``[B, L, 1]`` and the
    boolean mask ``[B, L]``; output: scores ``[B, L]``.
    """
    search_space(hp)
    units = int(hp.get("hidden_units"))
    scorer = tfr.keras.model.DNNScorer(
        hidden_layer_dims=[units] * int(hp.get("num_layers")),
        output_units=1,
        activation=tf.nn.relu,
        input_batch_norm=bool(hp.get("batch_norm")),
        use_batch_norm=bool(hp.get("batch_norm")),
        dropout=float(hp.get("dropout")),
    )
    builder = tfr.keras.model.ModelBuilder(
        input_creator=tfr.keras.model.FeatureSpecInputCreator(
            _dense_spec(feature_set.context), _dense_spec(feature_set.document)
        ),
        preprocessor=tfr.keras.model.PreprocessorWithSpec({}),
        scorer=scorer,
        mask_feature_name=MASK_KEY,
        name="ranker",
    )
    model = builder.build()
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=float(hp.get("learning_rate"))),
        loss=tfr.keras.losses.get(hp.get("loss")),
        metrics=ranking_metrics(),
    )
    return model
