"""TFX Tuner ``tuner_fn``: a KerasTuner search maximising eval NDCG@10, honest on small data.

The algorithm (random, bayesian, hyperband) and the budget (trials, steps and
epochs per trial: ``tuner.budget`` or explicit keys) come from the ``tuner``
config section (in ``custom_config["tuner"]``). Random and Bayesian searches try
``hparams.PORTFOLIO`` first (the defaults, gradient-boosted trees, the DASALC
recipe), then their own proposals. Neural trials train under the default strategy
in the Tuner's process and stop early on validation NDCG@10, keeping the best
epoch's weights, as the Trainer does; ``trees`` trials train TF-DF's
gradient-boosted trees on the same Transform outputs. Every trial is scored with
the pipeline's own metric (``modules.ranking_metrics``: full lists, ties as their
expectation) on the eval split, and the trial handed to the Trainer is chosen by
``modules.training.selection`` (the defaults are kept on a small eval split unless
beaten by more than the bootstrap standard error).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import keras_tuner as kt
import numpy as np
import tensorflow as tf
from tfx.components.tuner.component import TunerFnResult

from modules.features import MASK_KEY
from modules.memory import map_large_blocks, release_memory
from modules.ranking_metrics import ndcg_at_k
from modules.training import hparams as hparams_lib
from modules.training import selection as selection_lib
from modules.training.config import TUNER_ALGORITHMS, TunerSettings
from modules.training.hparams import search_space
from modules.training.inputs import FnInputs
from modules.training.model import VAL_NDCG_METRIC, build_model, is_trees

PROJECT_NAME = "ltr_tuning"
SELECTION_FILE = "selection.json"  # in the tuner's project folder; the executor copies it to TunerResults


def per_list_ndcg(model: tf.keras.Model, dataset: tf.data.Dataset, k: int = 10) -> list[float]:
    """The pipeline's NDCG@k of each list of ``dataset`` (full lists) that has a relevant document."""

    @tf.function(reduce_retracing=True)  # batches of full lists differ in length: one generic trace
    def score(features):
        return model(features, training=False)

    values = []
    for features, labels in dataset:
        scores, mask, labels = score(features).numpy(), features[MASK_KEY].numpy(), labels.numpy()
        for row_scores, row_mask, row_labels in zip(scores, mask, labels, strict=True):
            value = ndcg_at_k(row_labels[row_mask], row_scores[row_mask], k)
            if value is not None:
                values.append(value)
    return values


class _PortfolioFirst:
    """Oracle mixin: the first trials take ``hparams.PORTFOLIO``'s values, in order."""

    scorers: tuple[str, ...] = hparams_lib.SCORERS  # the scorers this search may try

    def populate_space(self, trial_id):
        tried = len(self.trials)
        portfolio = [values for values in hparams_lib.portfolio_values() if values["scorer"] in self.scorers]
        if tried < len(portfolio):
            return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": portfolio[tried]}
        return super().populate_space(trial_id)


class PortfolioRandomOracle(_PortfolioFirst, kt.oracles.RandomSearchOracle):
    pass


class PortfolioBayesianOracle(_PortfolioFirst, kt.oracles.BayesianOptimizationOracle):
    pass


class RankingSearch(kt.Tuner):
    """KerasTuner's Tuner with a trees branch, the pipeline's metric and the small-data rule."""

    def __init__(self, *args, trees_train_data=None, eval_data=None, seed: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.trees_train_data = trees_train_data  # one pass, full lists: what the trees learn from
        self.eval_data = eval_data
        self.selection_seed = seed
        self.per_list: dict[str, list[float]] = {}
        self.selection: selection_lib.Selection | None = None

    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        model = self.hypermodel.build(hp)
        if is_trees(hp):
            # Early stopping on held-out train lists, not eval; YDF's files under the trial's folder.
            model.fit_lists(self.trees_train_data, self.get_trial_dir(trial.trial_id))
        else:
            kwargs = dict(kwargs, callbacks=self._deepcopy_callbacks(kwargs.get("callbacks", [])))
            if "tuner/epochs" in hp.values:  # Hyperband's budget for this trial (trained from scratch)
                kwargs["epochs"] = hp.values["tuner/epochs"]
            model.fit(*args, **kwargs)
        values = per_list_ndcg(model, self.eval_data)
        self.per_list[trial.trial_id] = values
        return {VAL_NDCG_METRIC: float(np.mean(values)) if values else 0.0}

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        # The trial's model is garbage now: hand its memory back before the next trial builds one
        # (KerasTuner clears the Keras session before each build).
        release_memory(f"Tuner trial {trial.trial_id}")

    def select(self) -> selection_lib.Selection:
        defaults = hparams_lib.values(hparams_lib.fixed())
        completed = [
            t
            for t in self.oracle.trials.values()
            if t.status == kt.engine.trial.TrialStatus.COMPLETED and t.trial_id in self.per_list
        ]
        results = [
            selection_lib.TrialResult(
                t.trial_id,
                float(t.score),
                self.per_list[t.trial_id],
                is_default=hparams_lib.values(t.hyperparameters) == defaults,
            )
            for t in sorted(completed, key=lambda t: t.trial_id)
        ]
        self.selection = selection_lib.select(results, seed=self.selection_seed)
        with tf.io.gfile.GFile(os.path.join(self.project_dir, SELECTION_FILE), "w") as handle:
            json.dump(self.selection.to_json(), handle, indent=2)
        return self.selection

    def get_best_hyperparameters(self, num_trials: int = 1):
        """The selected trial's hyperparameters first (TFX's Tuner writes ``[0]``), then the others by score."""
        chosen = self.selection or self.select()
        ranked = super().get_best_hyperparameters(len(self.oracle.trials) or 1)
        first = self.oracle.trials[chosen.trial_id].hyperparameters
        rest = [hp for hp in ranked if hp.values != first.values]
        return ([first] + rest)[:num_trials]


def make_tuner(
    settings: TunerSettings,
    hypermodel,
    directory: str,
    seed: int,
    scorers: tuple[str, ...] = hparams_lib.SCORERS,
    **search_kwargs,
) -> kt.Tuner:
    """``scorers``: those the search may try (the trees cannot take a position-bias correction)."""
    objective = kt.Objective(VAL_NDCG_METRIC, direction="max")
    hyperparameters = kt.HyperParameters()
    if tuple(scorers) != hparams_lib.SCORERS:  # declared first, so search_space keeps this narrower choice
        hyperparameters.Choice("scorer", list(scorers), default=hparams_lib.DEFAULTS["scorer"])
    hyperparameters = search_space(hyperparameters)
    oracle_args = dict(objective=objective, hyperparameters=hyperparameters, seed=seed)
    if settings.algorithm == "random":
        oracle = PortfolioRandomOracle(max_trials=settings.max_trials, **oracle_args)
    elif settings.algorithm == "bayesian":
        oracle = PortfolioBayesianOracle(
            max_trials=settings.max_trials,
            num_initial_points=min(max(2, len(hparams_lib.PORTFOLIO)), settings.max_trials),
            **oracle_args,
        )
    elif settings.algorithm == "hyperband":
        # Hyperband sizes its brackets from max_epochs (tuner.epochs) and factor;
        # tuner.max_trials does not apply (e.g. epochs 3: 5 trials, 9 epochs in all).
        oracle = kt.oracles.HyperbandOracle(max_epochs=max(2, settings.epochs), factor=3, **oracle_args)
    else:
        raise ValueError(f"unknown tuner algorithm '{settings.algorithm}' (expected one of {TUNER_ALGORITHMS})")
    oracle.scorers = tuple(scorers)
    return RankingSearch(
        oracle=oracle,
        hypermodel=hypermodel,
        directory=directory,
        project_name=PROJECT_NAME,
        overwrite=True,
        seed=seed,
        **search_kwargs,
    )


def tuner_fn(fn_args) -> TunerFnResult:
    from modules.training.trainer import BestWeightsEarlyStopping

    map_large_blocks()  # the trials' tensors go back to the OS when freed (modules/memory.py)
    inputs = FnInputs.from_fn_args(fn_args)
    settings = TunerSettings.from_custom_config(fn_args.custom_config)
    # RankingTuner injects its max_trials execution (runtime) parameter here: it wins.
    settings.max_trials = int((fn_args.custom_config or {}).get("max_trials", settings.max_trials))
    config = inputs.config
    epochs = max(1, settings.epochs)
    steps_per_epoch = max(1, fn_args.train_steps // epochs)

    def hypermodel(hp: kt.HyperParameters) -> tf.keras.Model:
        # Every trial starts from the same seeded state (initial weights, dropout,
        # noise): with KerasTuner's seeded search, the same config and data give the
        # same trials, scores and best hyperparameters.
        tf.keras.utils.set_random_seed(config.seed)
        return build_model(
            inputs.model_inputs,
            hp,
            steps_per_execution=config.steps_per_execution,
            train_steps=steps_per_epoch * epochs,
            seed=config.seed,
            # A trial gets the same fraction of its final budget whatever the scorer: the
            # neural ones that fraction of the Trainer's steps, the trees that of their trees.
            budget_fraction=steps_per_epoch * epochs / max(1, config.train_steps),
        )

    eval_data = inputs.dataset(fn_args.eval_files, train=False)
    tuner = make_tuner(
        settings,
        hypermodel=hypermodel,
        directory=fn_args.working_dir,
        seed=config.seed,
        # The trees take no example weights or bias tower: with a position-bias correction
        # the search stays with the neural scorers rather than silently drop the correction.
        scorers=hparams_lib.SCORERS if config.position_bias == "none" else hparams_lib.NEURAL_SCORERS,
        trees_train_data=inputs.dataset(fn_args.train_files, train=False),
        eval_data=eval_data,
    )
    eval_lists = inputs.count_lists(fn_args.eval_files)
    fit_kwargs: dict[str, Any] = {
        "x": inputs.dataset(fn_args.train_files, train=True),
        "validation_data": eval_data,
        "validation_steps": fn_args.eval_steps or math.ceil(eval_lists / inputs.eval_batch_size),
        "steps_per_epoch": steps_per_epoch,
        "epochs": epochs,
        "callbacks": [
            BestWeightsEarlyStopping(
                monitor=VAL_NDCG_METRIC,
                mode="max",
                patience=config.early_stopping_patience,
                restore_best_weights=True,
            )
        ],
        "verbose": 2,
    }
    return TunerFnResult(tuner=tuner, fit_kwargs=fit_kwargs)
