"""The TF-Ranking Keras model: inputs from the schema, a DNN or listwise scorer, ranking losses."""

from __future__ import annotations

import keras_tuner as kt
import tensorflow as tf
import tensorflow_ranking as tfr

from modules.features import CONTEXT_BLOCK, DOCUMENT_BLOCK, MASK_KEY
from modules.training import losses
from modules.training.hparams import search_space
from modules.training.inputs import ModelInputs
from modules.training.position_bias import RANKER_NAME, serving_model

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


def _flat_inputs(context_features, example_features, mask) -> tf.Tensor:
    """``[B*L, F]``: every document's context and document inputs (TF-Ranking's circular padding)."""
    flat_context, flat_examples = tfr.keras.layers.FlattenList()(inputs=(context_features, example_features, mask))
    return tf.concat(
        [tf.keras.layers.Flatten()(flat_context[k]) for k in sorted(flat_context)]
        + [tf.keras.layers.Flatten()(flat_examples[k]) for k in sorted(flat_examples)],
        axis=1,
    )


def _normalised(inputs: tf.Tensor, batch_norm: bool, noise: float, name: str) -> tf.Tensor:
    """DASALC's input layer: batch normalisation of the (log1p) inputs, then Gaussian noise
    (``noise`` = its stddev, in batch-normalised units; training only, the served graph has none)."""
    if batch_norm:
        inputs = tf.keras.layers.BatchNormalization(name=f"{name}_bn")(inputs)
    if noise > 0:
        inputs = tf.keras.layers.GaussianNoise(noise, name=f"{name}_noise")(inputs)
    return inputs


class DnnScorer(tfr.keras.model.Scorer):
    """TF-Ranking's univariate DNN scorer (``tfr.keras.model.DNNScorer``'s tower) with DASALC's
    input layer: each document is scored alone from its batch-normalised, noised inputs."""

    def __init__(self, hidden_layer_dims: list[int], dropout: float, batch_norm: bool, input_noise: float = 0.0):
        self._hidden = list(hidden_layer_dims)
        self._dropout = dropout
        self._batch_norm = batch_norm
        self._noise = input_noise

    def __call__(self, context_features, example_features, mask):
        inputs = _normalised(
            _flat_inputs(context_features, example_features, mask), self._batch_norm, self._noise, "input"
        )
        tower = tfr.keras.layers.create_tower(
            hidden_layer_dims=self._hidden,
            output_units=1,
            activation=tf.nn.relu,
            input_batch_norm=False,
            use_batch_norm=self._batch_norm,
            dropout=self._dropout,
            name="dnn_tower",
        )
        return tfr.keras.layers.RestoreList()(inputs=(tower(inputs), mask))


class DasalcScorer(tfr.keras.model.Scorer):
    """DASALC-style listwise scorer (Qin et al., ICLR 2021) from TF-Ranking layers.

    Inputs are batch-normalised and, in training, perturbed with Gaussian noise
    (``input_noise``). Each document goes through a DNN tower
    (``tfr.keras.layers.create_tower``); a stack of multi-head self-attention layers
    over the list (``tfr.keras.layers.DocumentInteractionAttention``, masked to real
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
        input_noise: float = 0.0,
    ):
        self._hidden = list(hidden_layer_dims)
        self._heads = attention_heads
        self._attention_layers = attention_layers
        self._dropout = dropout
        self._batch_norm = batch_norm
        self._noise = input_noise

    def __call__(self, context_features, example_features, mask):
        width = self._hidden[-1]
        # [B, L, D]: context features repeated per document, then document features.
        listwise = tfr.keras.layers.ConcatFeatures()(inputs=(context_features, example_features, mask))
        listwise = _normalised(listwise, self._batch_norm, self._noise, "listwise_input")
        context = tfr.keras.layers.DocumentInteractionAttention(
            num_heads=self._heads,
            head_size=width,
            num_layers=self._attention_layers,
            dropout=self._dropout,
            name="document_interaction",
        )(inputs=(listwise, mask))  # [B, L, width]

        flat_inputs = _normalised(
            _flat_inputs(context_features, example_features, mask), self._batch_norm, self._noise, "input"
        )
        tower = tfr.keras.layers.create_tower(
            hidden_layer_dims=self._hidden[:-1],
            output_units=width,
            activation=tf.nn.relu,
            input_batch_norm=False,
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
    noise = float(hp.get("input_noise"))
    scorer = hp.get("scorer")
    if scorer == "dnn":
        return DnnScorer(hidden_layer_dims=hidden, dropout=dropout, batch_norm=batch_norm, input_noise=noise)
    if scorer == "dasalc":
        return DasalcScorer(
            hidden_layer_dims=hidden,
            attention_heads=int(hp.get("attention_heads")),
            attention_layers=int(hp.get("attention_layers")),
            dropout=dropout,
            batch_norm=batch_norm,
            input_noise=noise,
        )
    raise ValueError(f"unknown neural scorer '{scorer}'")


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
    return losses.get(hp.get("loss"))


class WarmupSchedule(tf.keras.optimizers.schedules.LearningRateSchedule):
    """``schedule(step)`` scaled linearly from ~0 to 1 over the first ``warmup_steps`` steps."""

    def __init__(self, schedule, warmup_steps: int):
        self.schedule = schedule
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        ramp = tf.minimum(1.0, (step + 1.0) / float(max(1, self.warmup_steps)))
        return self.schedule(step) * ramp

    def get_config(self):
        return {"schedule": tf.keras.optimizers.schedules.serialize(self.schedule), "warmup_steps": self.warmup_steps}


def learning_rate(hp: kt.HyperParameters, train_steps: int):
    """The learning rate or schedule over ``train_steps``: constant, cosine decay (to 0) or
    exponential decay (to a tenth), after a linear warmup over the ``warmup`` fraction of the steps."""
    rate = float(hp.get("learning_rate"))
    kind = hp.get("lr_schedule")
    steps = max(1, int(train_steps))
    if kind == "constant":
        schedule = tf.keras.optimizers.schedules.PolynomialDecay(rate, steps, end_learning_rate=rate)
    elif kind == "cosine":
        schedule = tf.keras.optimizers.schedules.CosineDecay(rate, steps)
    elif kind == "exponential":
        schedule = tf.keras.optimizers.schedules.ExponentialDecay(rate, steps, decay_rate=0.1)
    else:
        raise ValueError(f"unknown learning-rate schedule '{kind}'")
    warmup = int(float(hp.get("warmup")) * steps)
    if warmup:
        return WarmupSchedule(schedule, warmup)
    return rate if kind == "constant" else schedule


def is_trees(hp: kt.HyperParameters) -> bool:
    return hp.get("scorer") == "trees"


def build_trees(
    model_inputs: ModelInputs, hp: kt.HyperParameters, seed: int = 0, budget_fraction: float = 1.0
) -> tf.keras.Model:
    """The ``trees`` scorer, compiled with the ranking metrics (trained by ``fit_lists``, not ``fit``).

    ``budget_fraction``: a Tuner trial grows that fraction of the ``trees`` (at least 10), as
    a neural trial runs that fraction of the Trainer's steps, so trials compare at equal budget.
    """
    from modules.training.trees import TreesRanker  # TF-DF loads its ops: only when trees are used.

    model = TreesRanker(
        model_inputs,
        trees=max(10, round(int(hp.get("trees")) * min(1.0, budget_fraction))),
        depth=int(hp.get("tree_depth")),
        shrinkage=float(hp.get("shrinkage")),
        seed=seed,
    )
    model.compile(loss=losses.get("softmax_loss"), metrics=ranking_metrics())
    return model


def build_model(
    model_inputs: ModelInputs,
    hp: kt.HyperParameters,
    steps_per_execution: int = 1,
    train_steps: int = 1000,
    seed: int = 0,
    budget_fraction: float = 1.0,
    **compile_kwargs,
) -> tf.keras.Model:
    """Builds and compiles the ranking model for transformed, densified inputs.

    Inputs (``modules.training.inputs.densify``): the numeric blocks, context
    ``[B, C]`` and documents ``[B, L, D]``, each id feature ``[B, 1]`` / ``[B, L, 1]``
    (embedded before the scorer) and the boolean mask ``[B, L]``; output: scores ``[B, L]``.
    ``train_steps``: the length of the learning-rate schedule. The ``trees`` scorer
    returns a ``TreesRanker`` (trained with ``fit_lists``).
    """
    search_space(hp)
    if is_trees(hp):
        return build_trees(model_inputs, hp, seed, budget_fraction)
    model = make_model_builder(model_inputs, hp).build()
    if model_inputs.position_bias is not None:  # bias_tower: the tower is added for training
        model = model_inputs.position_bias.training_model(model)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=learning_rate(hp, train_steps)),
        loss=make_loss(hp),
        metrics=ranking_metrics(),
        steps_per_execution=steps_per_execution,
        **compile_kwargs,
    )
    return model


class EnsembleRanker(tf.keras.Model):
    """Several trained rankers served as one: the score of a document is the members' mean score.

    Members are relevance models (a position-bias tower is left out), trained apart
    (their own seeds, early stopping) and exported together: the same inputs, signatures
    and Transform graph as one member.
    """

    def __init__(self, members: list[tf.keras.Model], **kwargs):
        super().__init__(name="ensemble", **kwargs)
        self.members = [serving_model(member) for member in members]

    def call(self, inputs, training=None):
        return tf.add_n([member(inputs, training=training) for member in self.members]) / len(self.members)


def ensemble(members: list[tf.keras.Model], loss: tf.keras.losses.Loss) -> tf.keras.Model:
    """The members' mean score as one model, compiled with the ranking metrics (one member: itself)."""
    if len(members) == 1:
        return members[0]
    model = EnsembleRanker(members)
    model.compile(loss=loss, metrics=ranking_metrics())
    return model
