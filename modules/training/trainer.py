"""TFX Trainer ``run_fn``: trains the TF-Ranking model and exports it for serving.

One code path for every strategy: ``train_and_export`` runs in the TFX
executor (none / mirrored, or a cluster whose ``TF_CONFIG`` the platform set,
e.g. Vertex AI), or in each process ``modules.training.local_cluster`` starts
(multi_worker / parameter_server on one machine). Only the chief writes the
model, the metrics and the TensorBoard logs; the other workers write theirs to a
scratch directory that is deleted (MultiWorkerMirroredStrategy needs every worker
to take part in saving).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from typing import Any

import tensorflow as tf
from absl import logging

from modules.memory import map_large_blocks, release_memory
from modules.serving.signatures import export_serving_model
from modules.training import distribution
from modules.training import hparams as hparams_lib
from modules.training.config import METRICS_FILE, REQUIRE_HYPERPARAMETERS_KEY, TrainingConfig
from modules.training.inputs import FnInputs
from modules.training.model import (
    NDCG_METRIC,
    VAL_NDCG_METRIC,
    build_model,
    ensemble,
    is_trees,
    make_loss,
    ranking_metrics,
)
from modules.training.position_bias import position_bias_summary

LOGS_DIR = "logs"


@dataclasses.dataclass
class TrainJob:
    """The parts of TFX's FnArgs training needs, JSON-serialisable for worker processes."""

    train_files: list[str]
    eval_files: list[str]
    transform_graph_path: str
    schema_path: str
    serving_model_dir: str
    model_run_dir: str
    train_steps: int
    eval_steps: int | None
    custom_config: dict[str, Any]
    hyperparameters: dict[str, Any] | None = None

    @classmethod
    def from_fn_args(cls, fn_args) -> TrainJob:
        return cls(
            train_files=list(fn_args.train_files),
            eval_files=list(fn_args.eval_files),
            transform_graph_path=fn_args.transform_graph_path,
            schema_path=fn_args.schema_path,
            serving_model_dir=fn_args.serving_model_dir,
            model_run_dir=fn_args.model_run_dir,
            train_steps=int(fn_args.train_steps),
            eval_steps=int(fn_args.eval_steps) if fn_args.eval_steps else None,
            custom_config=dict(fn_args.custom_config or {}),
            hyperparameters=fn_args.hyperparameters,
        )

    @property
    def config(self) -> TrainingConfig:
        return TrainingConfig.from_custom_config(self.custom_config)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TrainJob:
        return cls(**json.loads(text))


class BestWeightsEarlyStopping(tf.keras.callbacks.EarlyStopping):
    """EarlyStopping that also restores the best epoch's weights when training
    runs to the end (Keras only restores them when it stops early)."""

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch == 0:
            self.model.set_weights(self.best_weights)


class TrainThroughput(tf.keras.callbacks.Callback):
    """Steady-state training speed: time between consecutive training executions,
    skipping the first one of the run (graph tracing) and validation."""

    def __init__(self, lists_per_step: int):
        super().__init__()
        self.lists_per_step = lists_per_step
        self.steps = 0
        self.seconds = 0.0
        self._previous: tuple[float, int] | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._previous = None

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self._previous is not None:
            self.seconds += now - self._previous[0]
            self.steps += batch - self._previous[1]
        self._previous = (now, batch)

    @property
    def lists_per_second(self) -> float:
        return self.steps * self.lists_per_step / self.seconds if self.seconds else 0.0


def evaluate_on_coordinator(model: tf.keras.Model, dataset: tf.data.Dataset) -> dict[str, float]:
    """Loss and ranking metrics over ``dataset``, computed in this process (one full pass)."""
    metrics = ranking_metrics()
    loss = tf.keras.metrics.Mean(name="loss")

    @tf.function(reduce_retracing=True)  # batches of full lists differ in length: one generic trace
    def step(features, labels):
        scores = model(features, training=False)
        loss.update_state(model.loss(labels, scores))
        for metric in metrics:
            metric.update_state(labels, scores)

    for features, labels in dataset:
        step(features, labels)
    return {m.name: float(m.result()) for m in [loss, *metrics]}


class CoordinatorValidation(tf.keras.callbacks.Callback):
    """Validation after each epoch on the ParameterServerStrategy coordinator.

    Adds ``val_*`` entries to the epoch logs, so EarlyStopping and TensorBoard
    (listed after it) see them as with Keras' own validation.
    """

    def __init__(self, dataset: tf.data.Dataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update({f"val_{k}": v for k, v in evaluate_on_coordinator(self.model, self.dataset).items()})


def _scratch_dir() -> str:
    task_type, index = distribution.task()
    return tempfile.mkdtemp(prefix=f"ltr-{task_type}-{index}-")


def _local_replicas(strategy: tf.distribute.Strategy) -> int:
    try:
        return max(1, len(strategy.extended.worker_devices))
    except RuntimeError:  # The default strategy has no device list: one replica.
        return 1


def train_and_export(job: TrainJob, strategy: tf.distribute.Strategy | None = None) -> dict[str, Any]:
    """Trains with early stopping on validation NDCG@10 and exports the SavedModel.

    Returns the summary written to ``metrics.json`` (also on non-chief workers).
    """
    config = job.config
    hp = hparams_lib.from_config(job.hyperparameters)
    if is_trees(hp):
        if config.position_bias != "none":
            raise ValueError(
                f"training.position_bias is '{config.position_bias}' but the hyperparameters choose the 'trees' "
                "scorer, which cannot apply it; use a neural scorer (dnn, dasalc) or position_bias: none"
            )
        return train_trees_and_export(job, hp)
    # Multi-process strategies must exist before any other TensorFlow op runs.
    strategy = strategy or distribution.make_strategy(config.strategy)
    chief = distribution.is_chief()
    inputs = FnInputs.from_paths(job.schema_path, job.transform_graph_path, job.custom_config)
    logging.info("Training with hyperparameters %s", hparams_lib.values(hp))
    tf.keras.utils.set_random_seed(config.seed)

    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch_size * replicas
    parameter_server = config.strategy == "parameter_server"
    epochs = max(1, min(config.epochs, job.train_steps))
    steps_per_epoch = max(1, job.train_steps // epochs)
    if parameter_server:
        # Validation runs on the coordinator (CoordinatorValidation): Keras' exact
        # evaluation under ParameterServerStrategy needs file-shardable input.
        eval_data = inputs.dataset(job.eval_files, train=False, batch_size=inputs.eval_batch_size * replicas)
        if job.eval_steps:
            eval_data = eval_data.take(job.eval_steps)
        validation_steps = None
    else:
        eval_data = inputs.distributed_dataset(strategy, job.eval_files, False, inputs.eval_batch_size * replicas)
        # One full pass: every worker reads all eval lists, split over its local replicas.
        local_batch = inputs.eval_batch_size * _local_replicas(strategy)
        validation_steps = job.eval_steps or math.ceil(inputs.count_lists(job.eval_files) / local_batch)

    scratch = None if chief else _scratch_dir()
    model_run_dir = job.model_run_dir if chief else os.path.join(scratch, "model_run")
    serving_model_dir = job.serving_model_dir if chief else os.path.join(scratch, "serving_model")
    # "auto": several models only where each costs its training steps alone (the whole train
    # split replayed from memory); a streamed split would be decoded again for every model.
    in_memory = inputs.in_memory(job.train_files)
    num_members = config.ensemble_members(in_memory)
    logging.info(
        "Training %d model(s) (training.ensemble: %s; train split %s)",
        num_members,
        config.ensemble,
        "replayed from memory" if in_memory else "streamed from its files",
    )
    try:
        members, runs = [], []
        for member in range(num_members):
            seed = config.ensemble_seed(member)
            tf.keras.utils.set_random_seed(seed)
            if parameter_server:
                # ParameterServerStrategy takes datasets through DatasetCreator; each worker
                # reads its own shard and runs whole steps of batch_size lists (asynchronously).
                train_data = tf.keras.utils.experimental.DatasetCreator(
                    inputs.input_fn(job.train_files, True, global_batch, seed)
                )
            else:
                train_data = inputs.distributed_dataset(strategy, job.train_files, True, global_batch, seed)
            with strategy.scope():
                model = build_model(
                    inputs.model_inputs,
                    hp,
                    steps_per_execution=config.steps_per_execution,
                    train_steps=steps_per_epoch * epochs,
                    seed=seed,
                )
            # The first member's curves are the run's (logs/train, logs/validation); the others' beside them.
            log_dir = os.path.join(model_run_dir, LOGS_DIR, *([f"member-{member}"] if member else []))
            runs.append(
                _fit_member(model, train_data, eval_data, epochs, steps_per_epoch, validation_steps, log_dir, config)
            )
            runs[-1]["seed"] = seed
            # Only its weights and call are needed from here on: drop the traced training and
            # validation graphs (tens of MiB per model) before the next model traces its own.
            model.train_function = model.test_function = model.predict_function = None
            members.append(model)
            release_memory(f"training model {member + 1} of {num_members}")
        plain = [_plain_copy(member, inputs, hp, config) for member in members]
        model = ensemble(plain, make_loss(hp))
        if len(members) == 1:  # the trained model itself, under its strategy
            if parameter_server:
                metrics = evaluate_on_coordinator(members[0], eval_data)
            else:
                metrics = members[0].evaluate(eval_data, steps=validation_steps, return_dict=True, verbose=0)
        else:  # the ensemble of plain copies, outside the strategy: one full pass over the eval lists
            metrics = evaluate_on_coordinator(
                model, eval_data if parameter_server else inputs.dataset(job.eval_files, train=False)
            )
        first = runs[0]
        summary = {
            "eval": {k: float(v) for k, v in metrics.items()},
            "hyperparameters": hparams_lib.values(hp),
            "train_steps": job.train_steps,
            "epochs_run": first["epochs_run"],
            "best_epoch": first["best_epoch"],
            "stopped_early": first["stopped_early"],
            "validation_history": first["validation_history"],
            "ensemble": [
                {k: run[k] for k in ("seed", "epochs_run", "best_epoch", "val_ndcg_10", "validation_history")}
                for run in runs
            ],
            "strategy": config.strategy,
            "replicas": replicas,
            "global_batch_size": global_batch,
            "train_lists_per_second": first["train_lists_per_second"],
            **position_bias_summary(config, inputs.model_inputs.position_bias),
        }
        logging.info("Eval %s = %.4f (%s)", NDCG_METRIC, summary["eval"][NDCG_METRIC], summary)
        tf.io.gfile.makedirs(model_run_dir)
        with tf.io.gfile.GFile(os.path.join(model_run_dir, METRICS_FILE), "w") as handle:
            json.dump(summary, handle, indent=2, sort_keys=True)
        export_serving_model(
            model,
            inputs.tft_output.transform_features_layer(),
            inputs.feature_set,
            inputs.model_inputs,
            serving_model_dir,
        )
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return summary


def _fit_member(model, train_data, eval_data, epochs, steps_per_epoch, validation_steps, log_dir, config) -> dict:
    """Trains one model with early stopping on validation NDCG@10 (best epoch's weights kept)."""
    parameter_server = config.strategy == "parameter_server"
    early_stopping = BestWeightsEarlyStopping(
        monitor=VAL_NDCG_METRIC,
        mode="max",
        patience=config.early_stopping_patience,
        restore_best_weights=True,
        verbose=1,
    )
    throughput = TrainThroughput(config.batch_size * model.distribute_strategy.num_replicas_in_sync)
    history = model.fit(
        train_data,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=None if parameter_server else eval_data,
        validation_steps=validation_steps,
        callbacks=([CoordinatorValidation(eval_data)] if parameter_server else [])
        + [early_stopping, tf.keras.callbacks.TensorBoard(log_dir=log_dir)]
        # ParameterServerStrategy allows no batch-level callbacks.
        + ([] if parameter_server else [throughput]),
        verbose=2,
    )
    validation = [float(v) for v in history.history.get(VAL_NDCG_METRIC, [])]
    return {
        "epochs_run": len(validation),
        "best_epoch": int(early_stopping.best_epoch) + 1,
        "stopped_early": bool(early_stopping.stopped_epoch),
        "validation_history": validation,
        "val_ndcg_10": max(validation) if validation else None,
        "train_lists_per_second": throughput.lists_per_second,
    }


def train_trees_and_export(job: TrainJob, hp) -> dict[str, Any]:
    """The ``trees`` scorer: TF-DF's gradient-boosted trees on the train split's full lists
    (early stopping on every 10th train list, held out), in this process (no distribution strategy:
    TF-DF trains on one machine), exported like the neural models."""
    config = job.config
    inputs = FnInputs.from_paths(job.schema_path, job.transform_graph_path, job.custom_config)
    logging.info("Training gradient-boosted trees with hyperparameters %s", hparams_lib.values(hp))
    tf.keras.utils.set_random_seed(config.seed)
    model = build_model(inputs.model_inputs, hp, seed=config.seed)
    eval_data = inputs.dataset(job.eval_files, train=False)
    start = time.perf_counter()
    fitted = model.fit_lists(inputs.dataset(job.train_files, train=False), job.model_run_dir)
    seconds = time.perf_counter() - start
    metrics = model.evaluate(eval_data, return_dict=True, verbose=0)
    summary = {
        "eval": {k: float(v) for k, v in metrics.items()},
        "hyperparameters": hparams_lib.values(hp),
        "train_steps": 0,
        "epochs_run": 1,
        "best_epoch": 1,
        "stopped_early": False,
        "validation_history": [float(metrics[NDCG_METRIC])],
        "strategy": "none",
        "replicas": 1,
        "global_batch_size": config.batch_size,
        "train_lists_per_second": 0.0,
        "trees": fitted["trees"],
        "train_documents": fitted["train_documents"],
        "train_seconds": seconds,
    }
    logging.info("Eval %s = %.4f (%s)", NDCG_METRIC, summary["eval"][NDCG_METRIC], summary)
    if not distribution.is_chief():
        return summary
    tf.io.gfile.makedirs(job.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(job.model_run_dir, METRICS_FILE), "w") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
    export_serving_model(
        model,
        inputs.tft_output.transform_features_layer(),
        inputs.feature_set,
        inputs.model_inputs,
        job.serving_model_dir,
    )
    return summary


def _plain_copy(model: tf.keras.Model, inputs: FnInputs, hp, config: TrainingConfig) -> tf.keras.Model:
    """The trained model rebuilt outside the strategy, for export.

    A serving signature traced over distributed variables cannot be saved
    (MultiWorkerMirrored / ParameterServer); a copy with plain variables can.
    Every worker runs this (reading synced variables may need all of them).
    """
    if config.strategy == "none":
        return model
    copy = build_model(inputs.model_inputs, hp, train_steps=1)
    copy.set_weights(model.get_weights())
    return copy


def serve_cluster_task() -> None:
    """ParameterServerStrategy workers and ps only serve the coordinator's requests."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(
        resolver.cluster_spec(),
        job_name=resolver.task_type,
        task_index=resolver.task_id,
        protocol=resolver.rpc_layer or "grpc",
        start=True,
    )
    server.join()


def run_task(job: TrainJob) -> None:
    """What this process does in the cluster ``TF_CONFIG`` describes (or alone)."""
    task_type, _ = distribution.task()
    if job.config.strategy == "parameter_server" and task_type in ("worker", "ps"):
        serve_cluster_task()  # Never returns: the launcher / platform ends it.
    train_and_export(job)


def _wait_for_export(path: str, timeout_s: int) -> None:
    """TFX's executor checks the export exists on every replica; wait for the chief's."""
    deadline = time.monotonic() + timeout_s
    while not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the chief did not export to {path} within {timeout_s} s")
        time.sleep(5)


def run_fn(fn_args) -> None:
    map_large_blocks()  # training's tensors go back to the OS when freed (modules/memory.py)
    try:
        _run(fn_args)
    finally:
        # This process goes on to the evaluator and the serving check: hand back what training
        # held (the models, datasets and Keras' global state are no longer used).
        release_memory("training", keras_session=True)


def _run(fn_args) -> None:
    if fn_args.hyperparameters is None and (fn_args.custom_config or {}).get(REQUIRE_HYPERPARAMETERS_KEY):
        raise ValueError(
            "tuning is off but no hyperparameters reached the Trainer: the Importer URI is empty or "
            "no earlier Tuner result exists in MLMD; run once with the Tuner on"
        )
    job = TrainJob.from_fn_args(fn_args)
    config = job.config
    if is_trees(hparams_lib.from_config(job.hyperparameters)):
        train_and_export(job)  # One process, whatever the strategy (TF-DF trains on one machine).
        return
    if config.strategy in distribution.MULTI_PROCESS_STRATEGIES and not distribution.has_cluster():
        from modules.training.local_cluster import run_local_cluster  # Starts the processes on localhost.

        run_local_cluster(job)
        return
    run_task(job)
    if not distribution.is_chief():
        _wait_for_export(job.serving_model_dir, config.cluster_timeout_s)
