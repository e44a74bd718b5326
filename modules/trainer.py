"""TFX Trainer ``run_fn``: trains the TF-Ranking model and exports it for serving."""

from __future__ import annotations

import json
import os

import tensorflow as tf
from absl import logging

from modules import hparams as hparams_lib
from modules.distribution import make_strategy
from modules.fn_inputs import FnInputs
from modules.model import NDCG_METRIC, build_model
from modules.serving import export_serving_model
from modules.training_config import REQUIRE_HYPERPARAMETERS_KEY

METRICS_FILE = "metrics.json"


def run_fn(fn_args) -> None:
    inputs = FnInputs.from_fn_args(fn_args)
    if fn_args.hyperparameters is None and (fn_args.custom_config or {}).get(REQUIRE_HYPERPARAMETERS_KEY):
        raise ValueError(
            "tuning is off but no hyperparameters reached the Trainer: the Importer URI is empty or "
            "no earlier Tuner result exists in MLMD; run once with the Tuner on"
        )
    hp = hparams_lib.from_config(fn_args.hyperparameters)
    logging.info("Training with hyperparameters %s", hparams_lib.values(hp))
    tf.keras.utils.set_random_seed(inputs.config.seed)

    train_ds = inputs.dataset(fn_args.train_files, train=True)
    eval_ds = inputs.dataset(fn_args.eval_files, train=False)

    with make_strategy(inputs.config.strategy).scope():
        model = build_model(inputs.feature_set, hp)

    epochs = max(1, min(inputs.config.epochs, fn_args.train_steps))
    model.fit(
        train_ds,
        epochs=epochs,
        steps_per_epoch=max(1, fn_args.train_steps // epochs),
        validation_data=eval_ds,
        callbacks=[
            tf.keras.callbacks.TensorBoard(log_dir=os.path.join(fn_args.model_run_dir, "logs")),
        ],
        verbose=2,
    )
    metrics = model.evaluate(eval_ds, return_dict=True, verbose=0)
    summary = {
        "eval": {k: float(v) for k, v in metrics.items()},
        "hyperparameters": hparams_lib.values(hp),
        "train_steps": fn_args.train_steps,
    }
    logging.info("Eval %s = %.4f", NDCG_METRIC, summary["eval"][NDCG_METRIC])
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, METRICS_FILE), "w") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)

    export_serving_model(
        model, inputs.tft_output.transform_features_layer(), inputs.feature_set, fn_args.serving_model_dir
    )
