"""The whole pipeline on LocalDagRunner, on a tiny generated data set."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import input_pb2

from modules.ranking_metrics import mean_ndcg, random_ndcg
from pipeline.config import apply_overrides, load_config
from pipeline.local_run import run_local
from pipeline.retraining import RetrainingError
from pipeline.sample_data import SampleSpec, write_span
from tests.helpers import read_records

EXPECTED_NODES = {
    "ImportSchemaGen",
    "ElwcExampleGen",
    "Transform",
    "Tuner",
    "Trainer",
    "RankingEvaluator",
    "ServingCheck",
    "RegistryPusher",
}


def test_every_component_completes(pipeline_run):
    _, report = pipeline_run
    assert set(report.executions) == EXPECTED_NODES
    assert set(report.executions.values()) == {"COMPLETE"}


def test_examples_hold_every_input_row_of_the_latest_span(pipeline_run):
    config, report = pipeline_run
    examples = report.artifact("Examples")
    assert examples.custom_properties["span"].int_value == 2  # the latest span, by default
    with open(os.path.join(config.data_root, "span-2", "logs.csv")) as handle:
        rows = sum(1 for _ in handle) - 1
    records = {
        split: read_records(os.path.join(examples.uri, f"Split-{split}", "*.gz")) for split in ("train", "eval", "test")
    }
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
    # Three disjoint splits: fitted on, selected on, judged on.
    assert all(query_ids.values())
    assert not (query_ids["train"] & query_ids["eval"] or query_ids["train"] & query_ids["test"])
    assert not query_ids["eval"] & query_ids["test"]
    assert report.evaluation["split"] == "test" and report.evaluation["lists"] == len(records["test"])


def test_registered_model_scores_serialized_elwc_and_beats_random(pipeline_run):
    _, report = pipeline_run
    registration = report.registration
    assert registration["version"] == 1
    assert os.path.isfile(os.path.join(registration["path"], "saved_model.pb"))
    model = tf.saved_model.load(registration["path"])
    serve = model.signatures["serving_default"]

    eval_uri = os.path.join(report.artifact("Examples").uri, "Split-eval", "*.gz")
    records = read_records(eval_uri)
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
    # The Trainer's validation metric is the numpy definition: lists without a relevant
    # document are left out of both means.
    assert report.eval_metrics["ndcg_10"] == pytest.approx(model_ndcg, abs=1e-4)


def test_tuned_hyperparameters_reach_the_trainer(pipeline_run):
    _, report = pipeline_run
    assert report.artifact("HyperParameters").uri


def test_retraining_without_tuner_fails_fast_without_earlier_results(tmp_path):
    config = apply_overrides(
        load_config(),
        {"metadata_path": str(tmp_path / "md.sqlite"), "pipeline_root": str(tmp_path / "p"), "tuner.enabled": False},
    )
    with pytest.raises(RetrainingError, match="no earlier Tuner result of pipeline 'ltr'"):
        run_local(config)
    assert not (tmp_path / "p").exists()  # no component ran

    config = apply_overrides(config, {"tuner.hyperparameters_uri": str(tmp_path / "missing")})
    with pytest.raises(RetrainingError, match="holds no best_hyperparameters.txt"):
        run_local(config)


def test_retraining_on_a_new_span_reuses_the_tuned_hyperparameters(pipeline_run):
    """Retraining mode, over a rolling window of the last two spans."""
    config, first = pipeline_run
    tuned = first.artifact("HyperParameters")
    write_span(Path(config.data_root), 3, SampleSpec(queries=config.sample_data.queries, seed=11))

    retrain = apply_overrides(
        config,
        {
            "tuner.enabled": False,
            "examples.rolling_window_spans": 2,
            "evaluation.max_regression": 1.0,  # this test is about retraining, not the gate
        },
    )
    report = run_local(retrain)
    assert "Tuner" not in report.executions
    assert report.executions["LatestHyperparametersResolver"] == "COMPLETE"
    assert report.executions["Trainer"] == "COMPLETE"  # new span: really retrained, not cached
    assert report.artifact("Examples").custom_properties["span"].int_value == 3
    # The rolling window: Transform and Trainer read the Examples of spans 2 and 3.
    for node in ("Transform", "Trainer"):
        spans = sorted(a.custom_properties["span"].int_value for a in report.inputs[node]["Examples"])
        assert spans == [2, 3], node
    # The evaluator judges on the newest span only.
    assert [a.custom_properties["span"].int_value for a in report.inputs["RankingEvaluator"]["Examples"]] == [3]
    # Lineage: the Trainer consumed exactly the Tuner's best_hyperparameters artifact of the first run.
    assert [a.id for a in report.inputs["Trainer"]["HyperParameters"]] == [tuned.id]
    assert report.registration["version"] == 2
