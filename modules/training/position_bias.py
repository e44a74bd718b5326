"""Position-bias correction in training: inverse propensity weights, or a bias tower.

``training.position_bias``:

- ``none``: clicks are labels as they are (the model learns the old ranking's bias too).
- ``ipw``: every training document is weighted by ``min(1 / propensity(position),
  ipw_max_weight)`` in the TF-Ranking loss (Keras ``sample_weight`` ``[B, L]``;
  e.g. the softmax loss scales each label by its weight, Wang et al. 2018).
  The propensities come from the PropensityEstimator's artifact
  (``custom_config[PROPENSITIES_URI_KEY]``). Validation stays unweighted.
- ``bias_tower``: a shallow tower on the display position (an embedding of the
  position clipped to ``MAX_POSITION``, plus optional ``bias_features``) whose
  output is added to the relevance score in training only (PAL, Guo et al. 2019;
  Yan et al. 2022). Validation, evaluation and the exported model use the
  relevance score alone: ``serving_model`` returns the ranker without the tower,
  so the served signatures take no position.

The position is the schema's ``role:position`` feature, read from the decoded
ELWC (it is not a model input); a document without one gets position 0 (weight 1,
its own tower bucket).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import tensorflow as tf

from modules.features import CONTEXT_BLOCK, DOCUMENT_BLOCK, POSITION_KEY, FeatureSet, Role
from modules.propensity import MAX_POSITION, PROPENSITIES_FILE, Propensities
from modules.training.config import POSITION_BIAS_MODES as MODES

__all__ = ["MODES", "POSITION_KEY", "PositionBias", "position_bias_summary", "serving_model"]
# custom_config key the Trainer / Tuner executors fill with the Propensities artifact's URI.
PROPENSITIES_URI_KEY = "propensities_uri"
RANKER_NAME = "ranker"
TOWER_MODEL_NAME = "ranker_with_bias_tower"


@dataclasses.dataclass(frozen=True)
class PositionBias:
    mode: str  # ipw | bias_tower
    position_feature: str
    max_weight: float = 10.0
    propensities: Propensities | None = None  # ipw
    # bias_tower: extra inputs, (model input key, column of the block or -1 for an id feature, ids)
    bias_inputs: tuple[tuple[str, int, int], ...] = ()

    @classmethod
    def from_config(
        cls, mode: str, feature_set: FeatureSet, model_inputs, custom_config: dict[str, Any] | None, **settings
    ) -> PositionBias | None:
        """None for ``none``; ``settings``: ipw_max_weight, bias_features."""
        if mode not in MODES:
            raise ValueError(f"training.position_bias must be one of {', '.join(MODES)}, not {mode!r}")
        if mode == "none":
            return None
        position = feature_set.single(Role.POSITION)
        if position is None:
            raise ValueError(f"training.position_bias is {mode} but the schema has no 'role:position' feature")
        max_weight = float(settings.get("ipw_max_weight", 10.0))
        if mode == "ipw":
            uri = (custom_config or {}).get(PROPENSITIES_URI_KEY)
            if not uri:
                raise ValueError(
                    "training.position_bias is ipw but no Propensities artifact reached training "
                    f"(custom_config['{PROPENSITIES_URI_KEY}'] is empty)"
                )
            return cls(mode, position.name, max_weight, load_propensities(uri))
        return cls(
            mode,
            position.name,
            max_weight,
            bias_inputs=_bias_inputs(settings.get("bias_features") or [], feature_set, model_inputs),
        )

    # --- input pipeline -------------------------------------------------------------------------

    def add_positions(self, transformed: dict[str, Any], decoded: dict[str, Any]) -> dict[str, Any]:
        """Adds the ragged ``[B, (docs)]`` int64 positions (0: missing) beside the transformed features."""
        raw = decoded[self.position_feature]
        values = tf.cast(raw.values.to_tensor(default_value=0, shape=[None, 1])[:, 0], tf.int64)
        return {**transformed, POSITION_KEY: raw.with_values(values)}

    def finish(self, transformed: dict[str, Any], features: dict, labels, list_size: int | None):
        """The dataset element: ipw training adds ``[B, L]`` weights; bias_tower adds the positions."""
        ragged = transformed[POSITION_KEY]
        if list_size is not None:
            ragged = ragged[:, :list_size]
        positions = ragged.to_tensor(default_value=0, shape=[None, list_size])
        if self.mode == "bias_tower":
            return {**features, POSITION_KEY: positions}, labels
        if list_size is None or labels is None:  # validation: unweighted
            return features, labels
        return features, labels, self.weights(positions)

    def weights(self, positions: tf.Tensor) -> tf.Tensor:
        """``min(1 / propensity, max_weight)`` per document; 1 where the position is missing."""
        table = self.propensities.weights(range(0, len(self.propensities.relative) + 1), self.max_weight)
        index = tf.clip_by_value(positions, 0, len(table) - 1)
        return tf.gather(tf.constant(table, tf.float32), index)

    # --- model ------------------------------------------------------------------------------------

    def training_model(self, ranker: tf.keras.Model) -> tf.keras.Model:
        """bias_tower: the ranker plus the tower (training only); ipw: the ranker."""
        if self.mode != "bias_tower":
            return ranker
        inputs = dict(ranker.input)
        positions = tf.keras.Input(shape=(None,), dtype=tf.int64, name=POSITION_KEY)
        bias = BiasTower(self.bias_inputs, name="bias_tower")({**inputs, POSITION_KEY: positions})
        scores = AddInTraining(name="score_plus_bias")([ranker(inputs), bias])
        return tf.keras.Model(inputs={**inputs, POSITION_KEY: positions}, outputs=scores, name=TOWER_MODEL_NAME)


def position_bias_summary(config, bias: PositionBias | None) -> dict[str, Any]:
    """What metrics.json records of the correction (read by the run report and ``ltr lineage``)."""
    summary: dict[str, Any] = {"position_bias": config.position_bias}
    if bias is not None and bias.mode == "ipw":
        summary["ipw_max_weight"] = bias.max_weight
        summary["propensities"] = list(bias.propensities.relative)
    if bias is not None and bias.mode == "bias_tower":
        summary["bias_features"] = list(config.bias_features)
    return summary


def serving_model(model: tf.keras.Model) -> tf.keras.Model:
    """The relevance model without any bias tower (what is exported)."""
    if model.name == TOWER_MODEL_NAME:
        return model.get_layer(RANKER_NAME)
    return model


def load_propensities(uri: str) -> Propensities:
    path = os.path.join(uri, PROPENSITIES_FILE)
    try:
        with tf.io.gfile.GFile(path) as handle:
            return Propensities.from_json(handle.read())
    except (tf.errors.NotFoundError, ValueError, KeyError) as error:
        raise ValueError(f"cannot read the propensities {path}: {error}") from None


def _bias_inputs(names: list[str], feature_set: FeatureSet, model_inputs) -> tuple[tuple[str, int, int], ...]:
    """training.bias_features -> (model input key, block column or -1, number of ids) each."""
    found = []
    for name in names:
        try:
            feature = feature_set[name]
        except KeyError:
            raise ValueError(f"training.bias_features: no feature '{name}' in the schema") from None
        if feature.role not in (Role.CONTEXT, Role.DOCUMENT):
            raise ValueError(f"training.bias_features: '{name}' is not a context or document feature")
        ids = model_inputs.context_ids if feature.role == Role.CONTEXT else model_inputs.document_ids
        if name in ids:
            found.append((name, -1, ids[name]))
            continue
        block = [f.name for f in feature_set.numeric(feature.role) if f.name not in ids]
        key = CONTEXT_BLOCK if feature.role == Role.CONTEXT else DOCUMENT_BLOCK
        found.append((key, block.index(name), 0))
    return tuple(found)


class BiasTower(tf.keras.layers.Layer):
    """Position (clipped to ``MAX_POSITION``) embedding, plus optional features -> one logit per document."""

    def __init__(self, bias_inputs=(), hidden_units: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.bias_inputs = tuple(tuple(x) for x in bias_inputs)
        self.position_embedding = tf.keras.layers.Embedding(MAX_POSITION + 1, 8, name="position_embedding")
        self.id_embeddings = {
            key: tf.keras.layers.Embedding(ids, 4, name=f"{key}_bias_embedding")
            for key, column, ids in self.bias_inputs
            if column < 0
        }
        self.hidden = tf.keras.layers.Dense(hidden_units, activation="relu", name="bias_hidden")
        self.out = tf.keras.layers.Dense(1, name="bias_logit")

    def call(self, features):
        positions = tf.clip_by_value(features[POSITION_KEY], 0, MAX_POSITION)
        parts = [self.position_embedding(positions)]  # [B, L, 8]
        length = tf.shape(positions)[1]
        for key, column, _ in self.bias_inputs:
            value = features[key]
            if column >= 0:
                value = value[..., column : column + 1]  # [B, C] or [B, L, D] -> one column
            else:
                value = self.id_embeddings[key](value[..., 0])  # ids [B, 1] / [B, L, 1] -> [B, d] / [B, L, d]
            if value.shape.rank == 2:  # a context input: the same for every document
                value = tf.repeat(value[:, None, :], length, axis=1)
            parts.append(tf.cast(value, tf.float32))
        return self.out(self.hidden(tf.concat(parts, axis=-1)))[..., 0]

    def get_config(self):
        return {**super().get_config(), "bias_inputs": self.bias_inputs}


class AddInTraining(tf.keras.layers.Layer):
    """``scores + bias`` while training, ``scores`` otherwise (validation, evaluation)."""

    def call(self, inputs, training=None):
        scores, bias = inputs
        if training is None:
            training = tf.keras.backend.learning_phase()
        return tf.__internal__.smart_cond.smart_cond(training, lambda: scores + bias, lambda: scores)
