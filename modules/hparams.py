"""Hyperparameter search space and defaults shared by the Tuner and the Trainer."""

from __future__ import annotations

from typing import Any

import keras_tuner as kt

# TF-Ranking loss keys (tfr.keras.losses.RankingLossKey values).
LOSSES = ("softmax_loss", "approx_ndcg_loss", "pairwise_logistic_loss", "list_mle_loss")

DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.01,
    "loss": "softmax_loss",
    "hidden_units": 64,
    "num_layers": 2,
    "dropout": 0.1,
    "batch_norm": True,
}


def search_space(hp: kt.HyperParameters) -> kt.HyperParameters:
    """Declares the searched hyperparameters on ``hp`` (idempotent) and returns it."""
    hp.Float("learning_rate", 1e-3, 1e-1, sampling="log", default=DEFAULTS["learning_rate"])
    hp.Choice("loss", list(LOSSES), default=DEFAULTS["loss"])
    hp.Choice("hidden_units", [32, 64, 128], default=DEFAULTS["hidden_units"])
    hp.Int("num_layers", 1, 3, default=DEFAULTS["num_layers"])
    hp.Float("dropout", 0.0, 0.3, step=0.1, default=DEFAULTS["dropout"])
    hp.Boolean("batch_norm", default=DEFAULTS["batch_norm"])
    return hp


def from_config(config: dict[str, Any] | None) -> kt.HyperParameters:
    """Hyperparameters from a Tuner/Importer artifact's config, or the defaults."""
    hp = kt.HyperParameters.from_config(config) if config else kt.HyperParameters()
    return search_space(hp)


def values(hp: kt.HyperParameters) -> dict[str, Any]:
    return {name: hp.get(name) for name in DEFAULTS}
