"""The whole pipeline on LocalDagRunner, on a tiny generated data set."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import input_pb2

from pipeline.config import apply_overrides, load_config
from pipeline.local_run import ensure_sample_data, run_local
from pipeline.ranking_metrics import mean_ndcg, random_ndcg

EXPECTED_NODES = {
    "ImportSchemaGen",
    "ElwcExampleGen",
    "ElwcDataView",
    "DataViewBinder",
    "Transform",
    "Tuner",
    "Trainer",
    "latest_blessed_model_resolver",
    "RankingEvaluator",
    "RegistryPusher",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    home = tmp_path_factory.mktemp("ltr-home")
    config = apply_overrides(
        load_config(),
        {
            "data_root": str(home / "data"),
            "pipeline_root": str(home / "pipeline"),
            "metadata_path": str(home / "metadata.sqlite"),
            "registry_root": str(home / "registry"),
            "sample_data.spans": 2,
            "sample_data.queries": 150,
            "training.train_steps": 150,
            "training.batch_size": 16,
            "tuner.max_trials": 2,
            "tuner.train_steps": 20,
        },
    )
    assert ensure_sample_data(config)
    return config, run_local(config)


def _records(pattern: str) -> list[bytes]:
    files = sorted(glob.glob(pattern))
    assert files, pattern
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def test_every_component_completes(run):
    _, report = run
    assert set(report.executions) == EXPECTED_NODES
    assert set(report.executions.values()) == {"COMPLETE"}


def test_examples_hold_every_input_row_of_the_latest_span(run):
    config, report = run
    examples = report.artifact("Examples")
    assert examples.custom_properties["span"].int_value == 2  # the latest span, by default
    with open(os.path.join(config.data_root, "span-2", "logs.csv")) as handle:
        rows = sum(1 for _ in handle) - 1
    records = {split: _records(os.path.join(examples.uri, f"Split-{split}", "*.gz")) for split in ("train", "eval")}
    lists = [input_pb2.ExampleListWithContext.FromString(r) for split in records.values() for r in split]
    assert sum(len(elwc.examples) for elwc in lists) == rows
    assert len(lists) == config.sample_data.queries
    query_ids = {
        split: {
            input_pb2.ExampleListWithContext.FromString(r).context.features.feature["query_id"].bytes_list.value[0]
            for r in recs
        }
        for split, recs in records.items()
    }
    assert query_ids["train"] and query_ids["eval"] and not query_ids["train"] & query_ids["eval"]


def test_registered_model_scores_serialized_elwc_and_beats_random(run):
    _, report = run
    registration = report.registration
    assert registration["version"] == 1
    assert os.path.isfile(os.path.join(registration["path"], "saved_model.pb"))
    model = tf.saved_model.load(registration["path"])
    serve = model.signatures["serving_default"]

    eval_uri = os.path.join(report.artifact("Examples").uri, "Split-eval", "*.gz")
    records = _records(eval_uri)
    outputs = serve(examples=tf.constant(records))
    scores, mask = outputs["scores"].numpy(), outputs["mask"].numpy()
    lists = []
    for record, row_scores, row_mask in zip(records, scores, mask, strict=True):
        elwc = input_pb2.ExampleListWithContext.FromString(record)
        labels = np.array([e.features.feature["label"].int64_list.value[0] for e in elwc.examples])
        assert row_mask.sum() == len(labels)
        lists.append((labels, row_scores[: len(labels)]))
    model_ndcg = mean_ndcg(lists)
    baseline = random_ndcg([labels for labels, _ in lists])
    assert model_ndcg > baseline + 0.15, (model_ndcg, baseline)
    # The TF-Ranking metric recorded by the Trainer agrees with the numpy one.
    assert report.eval_metrics["ndcg_10"] == pytest.approx(model_ndcg, abs=0.02)


def test_tuned_hyperparameters_reach_the_trainer(run):
    _, report = run
    assert report.artifact("HyperParameters").uri
