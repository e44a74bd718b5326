"""run_fn on real Transform output: one process vs. two local workers (MultiWorkerMirroredStrategy)."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import input_pb2
from tfx.components.trainer.fn_args_utils import FnArgs

from modules.ranking_metrics import mean_ndcg, random_ndcg
from modules.training import hparams
from modules.training.trainer import METRICS_FILE, run_fn

TRAINING = {"epochs": 3, "early_stopping_patience": 1, "seed": 0, "cluster_timeout_s": 300, "ensemble": 1}
# A small, stable model: the eval split has ~40 lists, so the comparison must not ride on noise.
HPARAMS = hparams.fixed(batch_norm=False, learning_rate=0.005, dropout=0.0).get_config()


def _train(transform_run, out, **training):
    fn_args = FnArgs(
        # Patterns, as TFX's Trainer passes them (fn_args.train_files: ".../Split-train/*").
        train_files=[os.path.join(transform_run.examples_uri, "Split-train", "*")],
        eval_files=[os.path.join(transform_run.examples_uri, "Split-eval", "*")],
        transform_graph_path=transform_run.transform_graph_path,
        schema_path=transform_run.schema_path,
        serving_model_dir=str(out / "serving"),
        model_run_dir=str(out / "model_run"),
        train_steps=60,
        eval_steps=None,
        custom_config={**TRAINING, **training},
        hyperparameters=HPARAMS,
    )
    run_fn(fn_args)
    with open(out / "model_run" / METRICS_FILE) as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def runs(transform_run, tmp_path_factory):
    # The same global batch (32 lists per step): one process, or 16 lists on each of two workers.
    # One process trains an ensemble (training.ensemble: auto, the default: the tiny train split is
    # replayed from memory, so three models, served as one); the workers train one model.
    single_out = tmp_path_factory.mktemp("single")
    single = _train(transform_run, single_out, strategy="none", batch_size=32, ensemble="auto")
    out = tmp_path_factory.mktemp("multi")
    multi = _train(transform_run, out, strategy="multi_worker", workers=2, batch_size=16)
    return single, multi, out, single_out


def _numpy_ndcg(transform_run, serving_dir) -> tuple[float, float]:
    serve = tf.saved_model.load(str(serving_dir)).signatures["serving_default"]
    records = [r.numpy() for r in tf.data.TFRecordDataset(transform_run.split_files("eval"), compression_type="GZIP")]
    scores = serve(examples=tf.constant(records))["scores"].numpy()
    lists = []
    for record, row in zip(records, scores, strict=True):
        elwc = input_pb2.ExampleListWithContext.FromString(record)
        labels = np.array([e.features.feature["label"].int64_list.value[0] for e in elwc.examples])
        lists.append((labels, row[: len(labels)]))
    return mean_ndcg(lists), random_ndcg([labels for labels, _ in lists])


def test_two_workers_split_the_global_batch(runs):
    single, multi, out, _ = runs
    assert (single["strategy"], single["replicas"], single["global_batch_size"]) == ("none", 1, 32)
    assert (multi["strategy"], multi["replicas"], multi["global_batch_size"]) == ("multi_worker", 2, 32)
    logs = sorted(os.listdir(out / "model_run" / "cluster"))
    assert logs == ["worker-0.log", "worker-1.log"]
    for name in logs:  # both workers ran every epoch of the same synchronous training
        text = (out / "model_run" / "cluster" / name).read_text()
        assert text.count("val_ndcg_10") >= multi["epochs_run"], name


def test_only_the_chief_exports_and_the_other_worker_cleans_up(runs):
    _, _, out, _ = runs
    assert (out / "serving" / "saved_model.pb").is_file()
    exports = [root for root, _, files in os.walk(out) if "saved_model.pb" in files]
    assert exports == [str(out / "serving")]
    worker_log = (out / "model_run" / "cluster" / "worker-1.log").read_text()
    scratch = re.findall(r"Writing fingerprint to (\S+)/serving_model/fingerprint\.pb", worker_log)
    assert scratch, "worker 1 must take part in saving (into its scratch directory)"
    assert not os.path.exists(scratch[0])
    assert not (out / "model_run" / "cluster" / "worker-1.log").read_text().count(str(out / "serving"))


def test_multi_worker_quality_matches_one_process_and_the_export_is_the_best_epoch(runs, transform_run):
    single, multi, out, _ = runs
    assert multi["eval"]["ndcg_10"] >= single["eval"]["ndcg_10"] - 0.05, (single["eval"], multi["eval"])
    assert multi["eval"]["ndcg_10"] == pytest.approx(max(multi["validation_history"]), abs=1e-4)
    exported, random = _numpy_ndcg(transform_run, out / "serving")
    # Validation scores full lists (no truncation to list_size, padding masked): the Trainer's
    # NDCG@10 is the number computed on the served model's scores of the same split.
    assert exported == pytest.approx(multi["eval"]["ndcg_10"], abs=1e-4)
    assert exported > random + 0.1


def test_an_ensemble_is_trained_member_by_member_and_served_as_one_model(runs, transform_run):
    single, _, _, out = runs
    members = single["ensemble"]
    assert [m["seed"] for m in members] == [0, 7919, 15838]  # each member its own seed (initial weights, data order)
    for member in members:
        assert len(member["validation_history"]) == member["epochs_run"] >= 1
        assert member["val_ndcg_10"] == max(member["validation_history"])  # its best epoch's weights kept
    assert single["validation_history"] == members[0]["validation_history"]  # the run's curves: the first member
    # The export scores the members' mean: its NDCG on full eval lists is the Trainer's eval of the ensemble.
    exported, random = _numpy_ndcg(transform_run, out / "serving")
    assert exported == pytest.approx(single["eval"]["ndcg_10"], abs=1e-4)
    assert exported > random + 0.1
    assert (out / "model_run" / "logs" / "member-1" / "validation").is_dir()  # the second member's curves


def test_parameter_server_strategy_trains_on_a_local_cluster_and_exports(transform_run, tmp_path):
    summary = _train(
        transform_run, tmp_path, strategy="parameter_server", workers=2, parameter_servers=1, batch_size=16
    )
    assert summary["strategy"] == "parameter_server"
    assert sorted(os.listdir(tmp_path / "model_run" / "cluster")) == [
        "chief-0.log",
        "ps-0.log",
        "worker-0.log",
        "worker-1.log",
    ]
    assert len(summary["validation_history"]) == summary["epochs_run"] >= 1
    exported, random = _numpy_ndcg(transform_run, tmp_path / "serving")
    assert exported == pytest.approx(summary["eval"]["ndcg_10"], abs=1e-4)  # full lists, as above
    assert exported > random + 0.1
