"""Hyperparameter search space and defaults shared by the Tuner and the Trainer.

The Trainer reads the Tuner's ``best_hyperparameters`` artifact through
``from_config``; without a Tuner it gets ``DEFAULTS``. Every name below is
declared on every trial (KerasTuner needs a fixed set for the Bayesian oracle);
settings a scorer does not use are simply ignored by it (the attention settings
by ``dnn``, the tree settings by the neural scorers, the neural settings by ``trees``).

The search starts from ``PORTFOLIO``: known-good configurations tried first, in
order (the defaults, gradient-boosted trees, the DASALC recipe), before the
algorithm's own proposals. The small-data rule of ``modules.training.selection``
compares the best trial with the first one (``DEFAULTS``).
"""

from __future__ import annotations

from typing import Any

import keras_tuner as kt

# TF-Ranking loss keys (tfr.keras.losses.RankingLossKey values) searched over.
# Left out: ordinal_loss (needs a multi-unit scorer), coupled_rankdistil_loss
# (needs a teacher), calibrated_softmax_loss (needs a calibration feature).
# "<loss>+<weight>": the loss with a TF-Ranking lambda weight (``+ndcg``:
# NDCGLambdaWeight, LambdaRank / LambdaLoss' NDCG-Loss; ``+ndcg2``:
# NDCGLambdaWeightV2, LambdaLoss' NDCG-Loss2; ``+position``: ListMLELambdaWeight).
# neural_sort_*: TF-Ranking 0.5.5's NeuralSort / PiRank losses (losses_impl),
# wrapped for Keras in modules.training.losses; gumbel_*: with Gumbel-sampled scores.
LOSSES = (
    "softmax_loss",
    "softmax_loss+ndcg",
    "approx_ndcg_loss",
    "gumbel_approx_ndcg_loss",
    "neural_sort_ndcg_loss",
    "gumbel_neural_sort_ndcg_loss",
    "neural_sort_cross_entropy_loss",
    "pairwise_logistic_loss",
    "pairwise_logistic_loss+ndcg",
    "pairwise_logistic_loss+ndcg2",
    "pairwise_hinge_loss",
    "pairwise_hinge_loss+ndcg",
    "pairwise_soft_zero_one_loss",
    "pairwise_mse_loss",
    "list_mle_loss",
    "list_mle_loss+position",
    "sigmoid_cross_entropy_loss",
    "mean_squared_loss",
    "unique_softmax_loss",
    "yeti_logistic_loss",
    "approx_mrr_loss",
)

# dnn: TF-Ranking's univariate DNNScorer (each document scored alone).
# dasalc: DNN tower modulated by a self-attention listwise context
# (tfr.keras.layers.DocumentInteractionAttention), so documents of a list see each other.
# trees: TF Decision Forests' GradientBoostedTreesModel, ranking task (LambdaMART, NDCG).
NEURAL_SCORERS = ("dnn", "dasalc")
SCORERS = (*NEURAL_SCORERS, "trees")

LR_SCHEDULES = ("constant", "cosine", "exponential")

DEFAULTS: dict[str, Any] = {
    "scorer": "dnn",
    "learning_rate": 0.01,
    "lr_schedule": "constant",
    "warmup": 0.0,
    "loss": "softmax_loss",
    "hidden_units": 64,
    "num_layers": 2,
    "dropout": 0.3,
    "batch_norm": True,
    "input_noise": 0.0,
    "attention_heads": 2,
    "attention_layers": 1,
    "trees": 200,
    "tree_depth": 6,
    "shrinkage": 0.1,
}

# Tried first, in this order: the Trainer's defaults, gradient-boosted trees (strong
# on small data and a reference on any), and DASALC's recipe (Qin et al., ICLR 2021:
# batch-normalised log1p inputs, Gaussian input noise, self-attention over the list,
# a wider tower) with a cosine learning-rate decay after a short warmup.
PORTFOLIO: tuple[dict[str, Any], ...] = (
    {},
    {"scorer": "trees"},
    {
        "scorer": "dasalc",
        "hidden_units": 256,
        "num_layers": 3,
        "input_noise": 0.1,
        "dropout": 0.1,
        "lr_schedule": "cosine",
        "warmup": 0.1,
        "learning_rate": 0.005,
    },
)


def search_space(hp: kt.HyperParameters) -> kt.HyperParameters:
    """Declares the searched hyperparameters on ``hp`` (idempotent) and returns it."""
    hp.Choice("scorer", list(SCORERS), default=DEFAULTS["scorer"])
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log", default=DEFAULTS["learning_rate"])
    hp.Choice("lr_schedule", list(LR_SCHEDULES), default=DEFAULTS["lr_schedule"])
    hp.Choice("warmup", [0.0, 0.05, 0.1], default=DEFAULTS["warmup"])  # fraction of the steps
    hp.Choice("loss", list(LOSSES), default=DEFAULTS["loss"])
    hp.Choice("hidden_units", [32, 64, 128, 256, 512], default=DEFAULTS["hidden_units"])
    hp.Int("num_layers", 1, 4, default=DEFAULTS["num_layers"])
    hp.Float("dropout", 0.0, 0.3, step=0.1, default=DEFAULTS["dropout"])
    hp.Boolean("batch_norm", default=DEFAULTS["batch_norm"])
    hp.Choice("input_noise", [0.0, 0.05, 0.1, 0.2], default=DEFAULTS["input_noise"])  # Gaussian stddev, training only
    hp.Choice("attention_heads", [1, 2, 4], default=DEFAULTS["attention_heads"])
    hp.Int("attention_layers", 1, 2, default=DEFAULTS["attention_layers"])
    hp.Choice("trees", [100, 200, 400], default=DEFAULTS["trees"])
    hp.Int("tree_depth", 4, 8, default=DEFAULTS["tree_depth"])
    hp.Choice("shrinkage", [0.05, 0.1, 0.2], default=DEFAULTS["shrinkage"])
    return hp


def from_config(config: dict[str, Any] | None) -> kt.HyperParameters:
    """Hyperparameters from a Tuner/Importer artifact's config, or the defaults.

    An artifact written before a hyperparameter existed gets its default, so the
    model it describes is rebuilt unchanged.
    """
    hp = kt.HyperParameters.from_config(config) if config else kt.HyperParameters()
    return search_space(hp)


def fixed(**overrides: Any) -> kt.HyperParameters:
    """The defaults with some values replaced (tests, benchmarks, the portfolio)."""
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise KeyError(f"unknown hyperparameters {unknown}; known: {sorted(DEFAULTS)}")
    hp = search_space(kt.HyperParameters())
    for name, value in overrides.items():
        hp.values[name] = value
    return hp


def portfolio_values() -> list[dict[str, Any]]:
    """Full value sets of the portfolio, in the order they are tried."""
    return [values(fixed(**entry)) for entry in PORTFOLIO]


def values(hp: kt.HyperParameters) -> dict[str, Any]:
    return {name: hp.get(name) for name in DEFAULTS}
