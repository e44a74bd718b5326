"""Training settings: the ``training`` section of the pipeline config.

The pipeline passes them to tuner_fn / run_fn through ``custom_config``
(train/eval steps also through TFX's TrainArgs/EvalArgs). The Tuner's
custom_config also carries the ``tuner`` section under ``TUNER_CONFIG_KEY``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# none: the default (one device); mirrored: all local devices; multi_worker:
# MultiWorkerMirroredStrategy over `workers` processes; parameter_server:
# ParameterServerStrategy with `workers` workers and `parameter_servers` ps.
STRATEGIES = ("none", "mirrored", "multi_worker", "parameter_server")
TUNER_ALGORITHMS = ("random", "bayesian", "hyperband")
POSITION_BIAS_MODES = ("none", "ipw", "bias_tower")
# tuner.budget -> (trials, steps per trial, epochs per trial); explicit tuner keys win.
# small: the defaults and the trees, briefly; default: the whole portfolio (defaults,
# trees, DASALC), minutes on 2 cores; large: an overnight search.
TUNER_BUDGETS: dict[str, tuple[int, int, int]] = {
    "small": (2, 60, 1),
    "default": (3, 120, 2),
    "large": (40, 1000, 5),
}
TUNER_CONFIG_KEY = "tuner"
# What run_fn writes into the ModelRun artifact (eval metrics, history, hyperparameters);
# here, not in modules.training.trainer, so readers (report, Pusher) need not import TensorFlow.
METRICS_FILE = "metrics.json"
# custom_config key: True when the Tuner is off, so training without imported
# hyperparameters fails instead of silently using the defaults.
REQUIRE_HYPERPARAMETERS_KEY = "require_hyperparameters"


AUTO = "auto"
# training.ensemble: auto -> this many models when the train split fits in memory (modules/training/inputs.py).
AUTO_ENSEMBLE = 3


@dataclasses.dataclass
class TrainingConfig:
    train_steps: int = 300
    eval_steps: int = 0  # 0: one full pass over the eval split
    # Lists per step on each replica (device/worker); the global batch is
    # batch_size * number of replicas, so more workers see more lists per step.
    batch_size: int = 32
    list_size: int = 32  # documents per list in a training batch (sampled afresh each batch); validation: full lists
    epochs: int = 6  # train_steps are spread over this many epochs (validation after each)
    early_stopping_patience: int = 2  # epochs without a better validation NDCG@10 before stopping
    steps_per_execution: int = 10  # training steps per tf.function call (less Python overhead)
    # Neural scorers: this many models of the chosen hyperparameters are trained, each with its
    # own seed (ensemble_seed), and exported as one model scoring their mean (1: a single model).
    # "auto": AUTO_ENSEMBLE models when the train split is replayed from memory (each model then
    # costs its training steps only), one when it streams from the files (each model would decode
    # the whole split again): see ``ensemble_members``.
    ensemble: int | str = "auto"
    strategy: str = "mirrored"
    workers: int = 2  # multi_worker / parameter_server: worker processes started locally
    parameter_servers: int = 1  # parameter_server: ps processes started locally
    cluster_timeout_s: int = 900  # local multi-process training is killed after this long
    seed: int = 0
    # Position-bias correction of click labels (modules/training/position_bias.py):
    position_bias: str = "none"  # none | ipw | bias_tower
    ipw_max_weight: float = 10.0  # ipw: clip of 1 / propensity
    bias_features: list[str] = dataclasses.field(default_factory=list)  # bias_tower: extra tower inputs

    def ensemble_members(self, train_split_in_memory: bool) -> int:
        """How many models the Trainer trains: ``ensemble``, or for ``"auto"`` ``AUTO_ENSEMBLE`` when
        the train split is replayed from memory (``inputs.cached_lists``) and 1 when it streams."""
        if self.ensemble == AUTO:
            return AUTO_ENSEMBLE if train_split_in_memory else 1
        return int(self.ensemble)

    def ensemble_seed(self, member: int) -> int:
        """Member ``member``'s seed: member 0 has ``seed``; the others never coincide with another
        ``seed``'s members (runs with seeds 0 and 1 share no model)."""
        return self.seed + 7919 * member

    @classmethod
    def from_custom_config(cls, custom_config: dict[str, Any] | None) -> TrainingConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (custom_config or {}).items() if k in fields})


@dataclasses.dataclass
class TunerSettings:
    """The ``tuner`` config section as the Tuner's module sees it."""

    enabled: bool = True
    algorithm: str = "random"
    budget: str = "default"  # small | default | large: trials, steps and epochs (TUNER_BUDGETS)
    max_trials: int | None = None  # None: from the budget
    train_steps: int | None = None  # steps per trial (per Hyperband epoch: train_steps // epochs); None: budget
    epochs: int | None = None  # epochs per trial (Hyperband: the most epochs a trial gets); None: budget
    hyperparameters_uri: str | None = None  # retraining (enabled: false): import these

    def __post_init__(self):
        if self.budget not in TUNER_BUDGETS:
            raise ValueError(f"unknown tuner budget '{self.budget}' (expected one of {', '.join(TUNER_BUDGETS)})")
        trials, steps, epochs = TUNER_BUDGETS[self.budget]
        self.max_trials = trials if self.max_trials is None else self.max_trials
        self.train_steps = steps if self.train_steps is None else self.train_steps
        self.epochs = epochs if self.epochs is None else self.epochs

    @classmethod
    def from_custom_config(cls, custom_config: dict[str, Any] | None) -> TunerSettings:
        section = (custom_config or {}).get(TUNER_CONFIG_KEY) or {}
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in section.items() if k in fields})
