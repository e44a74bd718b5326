"""TFX Tuner ``tuner_fn``: a KerasTuner search maximising validation NDCG@10.

The algorithm (random, bayesian, hyperband) and the trial budget come from the
``tuner`` config section (in ``custom_config["tuner"]``). Trials train under
the default strategy in the Tuner's process; each trial stops early on
validation NDCG@10 like the Trainer does.
"""

from __future__ import annotations

import math

import keras_tuner as kt
import tensorflow as tf
from tfx.components.tuner.component import TunerFnResult

from modules.training.config import TUNER_ALGORITHMS, TunerSettings
from modules.training.hparams import search_space
from modules.training.inputs import FnInputs, count_records
from modules.training.model import VAL_NDCG_METRIC, build_model

PROJECT_NAME = "ltr_tuning"


def make_tuner(settings: TunerSettings, hypermodel, directory: str, seed: int) -> kt.Tuner:
    objective = kt.Objective(VAL_NDCG_METRIC, direction="max")
    common = dict(
        hypermodel=hypermodel,
        objective=objective,
        hyperparameters=search_space(kt.HyperParameters()),
        directory=directory,
        project_name=PROJECT_NAME,
        seed=seed,
        overwrite=True,
    )
    if settings.algorithm == "random":
        return kt.RandomSearch(max_trials=settings.max_trials, **common)
    if settings.algorithm == "bayesian":
        return kt.BayesianOptimization(
            max_trials=settings.max_trials, num_initial_points=min(2, settings.max_trials), **common
        )
    if settings.algorithm == "hyperband":
        # Hyperband sizes its brackets from max_epochs (tuner.epochs) and factor;
        # tuner.max_trials does not apply (e.g. epochs 3: 5 trials, 9 epochs in all).
        return kt.Hyperband(max_epochs=max(2, settings.epochs), factor=3, **common)
    raise ValueError(f"unknown tuner algorithm '{settings.algorithm}' (expected one of {TUNER_ALGORITHMS})")


def tuner_fn(fn_args) -> TunerFnResult:
    inputs = FnInputs.from_fn_args(fn_args)
    settings = TunerSettings.from_custom_config(fn_args.custom_config)
    # RankingTuner injects its max_trials execution (runtime) parameter here: it wins.
    settings.max_trials = int((fn_args.custom_config or {}).get("max_trials", settings.max_trials))
    config = inputs.config

    def hypermodel(hp: kt.HyperParameters) -> tf.keras.Model:
        # Every trial starts from the same seeded state (initial weights, dropout,
        # noise): with KerasTuner's seeded search, the same config and data give the
        # same trials, scores and best hyperparameters.
        tf.keras.utils.set_random_seed(config.seed)
        return build_model(inputs.model_inputs, hp, steps_per_execution=config.steps_per_execution)

    tuner = make_tuner(settings, hypermodel=hypermodel, directory=fn_args.working_dir, seed=config.seed)
    epochs = max(1, settings.epochs)
    eval_lists = count_records(fn_args.eval_files)
    return TunerFnResult(
        tuner=tuner,
        fit_kwargs={
            "x": inputs.dataset(fn_args.train_files, train=True),
            "validation_data": inputs.dataset(fn_args.eval_files, train=False),
            "validation_steps": fn_args.eval_steps or math.ceil(eval_lists / config.batch_size),
            "steps_per_epoch": max(1, fn_args.train_steps // epochs),
            "epochs": epochs,
            "callbacks": [
                tf.keras.callbacks.EarlyStopping(
                    monitor=VAL_NDCG_METRIC, mode="max", patience=config.early_stopping_patience
                )
            ],
            "verbose": 2,
        },
    )
