"""Hyperparameter search space and defaults shared by the Tuner and the Trainer.

The Trainer reads the Tuner's ``best_hyperparameters`` artifact through
``from_config``; without a Tuner it gets ``DEFAULTS``. Every name below is
declared on every trial (KerasTuner needs a fixed set for the Bayesian oracle),
the attention settings are simply unused by the ``dnn`` scorer.
"""

from __future__ import annotations

from typing import Any

import keras_tuner as kt

# TF-Ranking loss keys (tfr.keras.losses.RankingLossKey values) searched over.
# Left out: ordinal_loss (needs a multi-unit scorer), coupled_rankdistil_loss
# (needs a teacher), calibrated_softmax_loss (needs a calibration feature).
LOSSES = (
    "softmax_loss",
    "approx_ndcg_loss",
    "pairwise_logistic_loss",
    "list_mle_loss",
    "pairwise_hinge_loss",
    "pairwise_soft_zero_one_loss",
    "pairwise_mse_loss",
    "sigmoid_cross_entropy_loss",
    "mean_squared_loss",
    "unique_softmax_loss",
    "yeti_logistic_loss",
    "approx_mrr_loss",
    "gumbel_approx_ndcg_loss",
)

# dnn: TF-Ranking's univariate DNNScorer (each document scored alone).
# dasalc: DNN tower modulated by a self-attention listwise context
# (tfr.keras.layers.DocumentInteractionAttention), so documents of a list see each other.
SCORERS = ("dnn", "dasalc")

DEFAULTS: dict[str, Any] = {
    "scorer": "dnn",
    "learning_rate": 0.01,
    "loss": "softmax_loss",
    "hidden_units": 64,
    "num_layers": 2,
    "dropout": 0.1,
    "batch_norm": True,
    "attention_heads": 2,
    "attention_layers": 1,
}


def search_space(hp: kt.HyperParameters) -> kt.HyperParameters:
    """Declares the searched hyperparameters on ``hp`` (idempotent) and returns it."""
    hp.Choice("scorer", list(SCORERS), default=DEFAULTS["scorer"])
    hp.Float("learning_rate", 1e-3, 1e-1, sampling="log", default=DEFAULTS["learning_rate"])
    hp.Choice("loss", list(LOSSES), default=DEFAULTS["loss"])
    hp.Choice("hidden_units", [32, 64, 128], default=DEFAULTS["hidden_units"])
    hp.Int("num_layers", 1, 3, default=DEFAULTS["num_layers"])
    hp.Float("dropout", 0.0, 0.3, step=0.1, default=DEFAULTS["dropout"])
    hp.Boolean("batch_norm", default=DEFAULTS["batch_norm"])
    hp.Choice("attention_heads", [1, 2, 4], default=DEFAULTS["attention_heads"])
    hp.Int("attention_layers", 1, 2, default=DEFAULTS["attention_layers"])
    return hp


def from_config(config: dict[str, Any] | None) -> kt.HyperParameters:
    """Hyperparameters from a Tuner/Importer artifact's config, or the defaults."""
    hp = kt.HyperParameters.from_config(config) if config else kt.HyperParameters()
    return search_space(hp)


def fixed(**overrides: Any) -> kt.HyperParameters:
    """The defaults with some values replaced (tests, benchmarks)."""
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise KeyError(f"unknown hyperparameters {unknown}; known: {sorted(DEFAULTS)}")
    hp = search_space(kt.HyperParameters())
    for name, value in overrides.items():
        hp.values[name] = value
    return hp


def values(hp: kt.HyperParameters) -> dict[str, Any]:
    return {name: hp.get(name) for name in DEFAULTS}
