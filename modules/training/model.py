"""The TF-Ranking Keras model: inputs from the schema, a DNN or listwise scorer, ranking losses."""

from __future__ import annotations

import keras_tuner as kt
import tensorflow as tf
import tensorflow_ranking as tfr

from modules.features import CONTEXT_BLOCK, DOCUMENT_BLOCK, MASK_KEY
from modules.training.hparams import search_space
from modules.training.inputs import ModelInputs
from modules.training.position_bias import RANKER_NAME

NDCG_METRIC = "ndcg_10"
VAL_NDCG_METRIC = f"val_{NDCG_METRIC}"


def _dense_spec(block_key: str, block_width: int, ids: dict[str, int]) -> dict[str, tf.io.FixedLenFeature]:
    """Per list (context) or document: the numeric block ``[width]`` floats, one int64 id per id feature."""
    spec = {name: tf.io.FixedLenFeature(shape=(1,), dtype=tf.int64) for name in ids}
    if block_width:
        spec[block_key] = tf.io.FixedLenFeature(shape=(block_width,), dtype=tf.float32)
    return spec


def embedding_dim(num_ids: int) -> int:
    """A common rule of thumb (1.6 * n^0.56), kept between 4 and 16 for ranking features."""
    return int(min(16, max(4, round(1.6 * num_ids**0.56))))


def _embedding(name: str, num_ids: int, context: bool) -> tf.keras.layers.Layer:
    """Ids ``[B, 1]`` (context) or ``[B, L, 1]`` (documents) -> ``[B, d]`` or ``[B, L, d]``."""
    dim = embedding_dim(num_ids)
    return tf.keras.Sequential(
        [
            tf.keras.layers.Embedding(num_ids, dim, name=f"{name}_embedding"),
            tf.keras.layers.Reshape((dim,) if context else (-1, dim)),
        ],
        name=f"{name}_embedded",
    )


def _over_lists_with_a_relevant_document(metric_class: type) -> type:
    """``metric_class`` averaged over lists with at least one label above 0 only.

    The pipeline's one metric definition (modules/ranking_metrics.py) leaves lists
    without a relevant document out of the mean; TF-Ranking's metrics count them
    as 0. A list whose weights are all 0 is ignored by TF-Ranking's per-list
    weighting, so the weight of every document of such a list is set to 0.
    """

    class Metric(metric_class):
        def update_state(self, y_true, y_pred, sample_weight=None):
            labels = tf.cast(y_true, tf.float32)
            relevant = tf.cast(tf.reduce_max(labels, axis=-1, keepdims=True) > 0, tf.float32)
            weights = tf.ones_like(labels) * relevant
            if sample_weight is not None:
                weights *= tf.cast(sample_weight, tf.float32)
            return super().update_state(y_true, y_pred, sample_weight=weights)

    Metric.__name__ = metric_class.__name__
    return Metric


_NDCG = _over_lists_with_a_relevant_document(tfr.keras.metrics.NDCGMetric)
_MRR = _over_lists_with_a_relevant_document(tfr.keras.metrics.MRRMetric)


def ranking_metrics() -> list[tf.keras.metrics.Metric]:
    """Validation metrics: the definition of modules/ranking_metrics.py, in TensorFlow.

    NDCG@k (gain 2^rel-1, log2 discount, full lists) and MRR over the lists that
    have a relevant document. Model scores are continuous, so the tie expectation
    of the numpy definition agrees with TF-Ranking's stable sort in practice.
    """
    return [
        _NDCG(name=NDCG_METRIC, topn=10),
        _NDCG(name="ndcg_5", topn=5),
        _NDCG(name="ndcg_1", topn=1),
        _MRR(name="mrr"),
    ]


class DasalcScorer(tfr.keras.model.Scorer):
    """DASALC-style listwise scorer (Qin et al., ICLR 2021) from TF-Ranking layers.

    Each document goes through a DNN tower (``tfr.keras.layers.create_tower``);
    a stack of multi-head self-attention layers over the list
    (``tfr.keras.layers.DocumentInteractionAttention``, masked to real
    documents) gives every document a listwise context vector ``a``; the score
    is ``Dense(1)(h * (1 + a))``, so the context modulates the tower's output.
    Padded documents never influence real ones (the attention is masked and the
    flattening uses TF-Ranking's circular padding).
    """

    def __init__(
        self,
        hidden_layer_dims: list[int],
        attention_heads: int,
        attention_layers: int,
        dropout: float,
        batch_norm: bool,
    ):
        self._hidden = list(hidden_layer_dims)
        self._heads = attention_heads
        self._attention_layers = attention_layers
        self._dropout = dropout
        self._batch_norm = batch_norm

    def __call__(self, context_features, example_features, mask):
        width = self._hidden[-1]
        # [B, L, D]: context features repeated per document, then document features.
        listwise = tfr.keras.layers.ConcatFeatures()(inputs=(context_features, example_features, mask))
        if self._batch_norm:
            listwise = tf.keras.layers.BatchNormalization(name="listwise_input_bn")(listwise)
        context = tfr.keras.layers.DocumentInteractionAttention(
            num_heads=self._heads,
            head_size=width,
            num_layers=self._attention_layers,
            dropout=self._dropout,
            name="document_interaction",
        )(inputs=(listwise, mask))  # [B, L, width]

        flat_context, flat_examples = tfr.keras.layers.FlattenList()(inputs=(context_features, example_features, mask))
        flat_inputs = tf.concat(
            [tf.keras.layers.Flatten()(flat_context[k]) for k in sorted(flat_context)]
            + [tf.keras.layers.Flatten()(flat_examples[k]) for k in sorted(flat_examples)],
            axis=1,
        )
        tower = tfr.keras.layers.create_tower(
            hidden_layer_dims=self._hidden[:-1],
            output_units=width,
            activation=tf.nn.relu,
            input_batch_norm=self._batch_norm,
            use_batch_norm=self._batch_norm,
            dropout=self._dropout,
            name="document_tower",
        )
        hidden = tf.nn.relu(tower(flat_inputs))  # [B*L, width]
        flat_attention = tf.reshape(context, [-1, width])  # same [B*L] order as FlattenList
        logits = tf.keras.layers.Dense(1, name="score")(hidden * (1.0 + flat_attention))
        return tfr.keras.layers.RestoreList()(inputs=(logits, mask))


def make_scorer(hp: kt.HyperParameters) -> tfr.keras.model.Scorer:
    units = int(hp.get("hidden_units"))
    hidden = [units] * int(hp.get("num_layers"))
    dropout = float(hp.get("dropout"))
    batch_norm = bool(hp.get("batch_norm"))
    scorer = hp.get("scorer")
    if scorer == "dnn":
        return tfr.keras.model.DNNScorer(
            hidden_layer_dims=hidden,
            output_units=1,
            activation=tf.nn.relu,
            input_batch_norm=batch_norm,
            use_batch_norm=batch_norm,
            dropout=dropout,
        )
    if scorer == "dasalc":
        return DasalcScorer(
            hidden_layer_dims=hidden,
            attention_heads=int(hp.get("attention_heads")),
            attention_layers=int(hp.get("attention_layers")),
            dropout=dropout,
            batch_norm=batch_norm,
        )
    raise ValueError(f"unknown scorer '{scorer}'")


def make_model_builder(model_inputs: ModelInputs, hp: kt.HyperParameters) -> tfr.keras.model.ModelBuilder:
    """Inputs: the numeric blocks and the id features of ``model_inputs`` (ids are embedded)."""
    embeddings = {name: _embedding(name, n, True) for name, n in model_inputs.context_ids.items()}
    embeddings.update({name: _embedding(name, n, False) for name, n in model_inputs.document_ids.items()})
    return tfr.keras.model.ModelBuilder(
        input_creator=tfr.keras.model.FeatureSpecInputCreator(
            _dense_spec(CONTEXT_BLOCK, model_inputs.context_block, model_inputs.context_ids),
            _dense_spec(DOCUMENT_BLOCK, model_inputs.document_block, model_inputs.document_ids),
        ),
        preprocessor=tfr.keras.model.PreprocessorWithSpec(embeddings),
        scorer=make_scorer(hp),
        mask_feature_name=MASK_KEY,
        name=RANKER_NAME,
    )


def make_loss(hp: kt.HyperParameters) -> tf.keras.losses.Loss:
    return tfr.keras.losses.get(hp.get("loss"))


def build_model(
    model_inputs: ModelInputs,
    hp: kt.HyperParameters,
    steps_per_execution: int = 1,
    **compile_kwargs,
) -> tf.keras.Model:
    """Builds and compiles the ranking model for transformed, densified inputs.

    Inputs (``modules.training.inputs.densify``): the numeric blocks, context
    ``[B, C]`` and documents ``[B, L, D]``, each id feature ``[B, 1]`` / ``[B, L, 1]``
    (embedded before the scorer) and the boolean mask ``[B, L]``; output: scores ``[B, L]``.
    """
    search_space(hp)
    model = make_model_builder(model_inputs, hp).build()
    if model_inputs.position_bias is not None:  # bias_tower: the tower is added for training
        model = model_inputs.position_bias.training_model(model)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=float(hp.get("learning_rate"))),
        loss=make_loss(hp),
        metrics=ranking_metrics(),
        steps_per_execution=steps_per_execution,
        **compile_kwargs,
    )
    return model
