"""TFX Tuner ``tuner_fn``: a KerasTuner search maximising validation NDCG@10."""

from __future__ import annotations

import keras_tuner as kt
from tfx.components.tuner.component import TunerFnResult

from modules.fn_inputs import FnInputs
from modules.hparams import search_space
from modules.model import NDCG_METRIC, build_model


def tuner_fn(fn_args) -> TunerFnResult:
    inputs = FnInputs.from_fn_args(fn_args)
    max_trials = int((fn_args.custom_config or {}).get("max_trials", 2))
    tuner = kt.RandomSearch(
        hypermodel=lambda hp: build_model(inputs.feature_set, hp),
        objective=kt.Objective(f"val_{NDCG_METRIC}", direction="max"),
        max_trials=max_trials,
        hyperparameters=search_space(kt.HyperParameters()),
        directory=fn_args.working_dir,
        project_name="ltr_tuning",
        seed=inputs.config.seed,
        overwrite=True,
    )
    return TunerFnResult(
        tuner=tuner,
        fit_kwargs={
            "x": inputs.dataset(fn_args.train_files, train=True),
            "validation_data": inputs.dataset(fn_args.eval_files, train=False),
            "steps_per_epoch": fn_args.train_steps,
            "epochs": 1,
            "verbose": 2,
        },
    )
