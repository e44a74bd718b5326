"""The ``trees`` scorer: TF-DF gradient-boosted trees trained on the Transform outputs,
exported with the neural models' signatures and Transform graph, served by a fresh process."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from components.serving_check import executor as check_executor
from modules.features import MASK_KEY
from modules.serving import loading
from modules.training import hparams
from modules.training.inputs import FnInputs
from modules.training.model import build_model
from modules.training.trainer import TrainJob, train_and_export
from modules.training.trees import TreesRanker
from tests.helpers import read_records


@pytest.fixture(scope="module")
def trees_model(transform_run, tmp_path_factory):
    """The production Trainer path (``train_and_export``) on trees hyperparameters, plus the fitted model."""
    tmp = tmp_path_factory.mktemp("trees")
    hp = hparams.fixed(scorer="trees", trees=20, tree_depth=4)
    job = TrainJob(
        train_files=transform_run.split_files("train"),
        eval_files=transform_run.split_files("eval"),
        transform_graph_path=transform_run.transform_graph_path,
        schema_path=transform_run.schema_path,
        serving_model_dir=str(tmp / "serving"),
        model_run_dir=str(tmp / "run"),
        train_steps=10,
        eval_steps=None,
        custom_config={"batch_size": 16, "seed": 0, "strategy": "mirrored"},
        hyperparameters=hp.get_config(),
    )
    summary = train_and_export(job)
    # The same training again, by hand, to compare the Keras/TF-DF model's own scores.
    inputs = FnInputs.from_paths(job.schema_path, job.transform_graph_path, job.custom_config)
    model = build_model(inputs.model_inputs, hp, seed=0)
    model.fit_lists(inputs.dataset(job.train_files, train=False), str(tmp / "by_hand"))
    return job, summary, model, inputs


def test_trees_train_on_the_transform_outputs_and_report_their_eval_metrics(trees_model):
    job, summary, model, _ = trees_model
    assert isinstance(model, TreesRanker)
    assert summary["hyperparameters"]["scorer"] == "trees"
    assert 0 < summary["trees"] <= 20 and summary["train_documents"] > 100
    assert 0.0 < summary["eval"]["ndcg_10"] <= 1.0
    with open(f"{job.model_run_dir}/metrics.json") as handle:
        assert json.load(handle)["eval"]["ndcg_10"] == pytest.approx(summary["eval"]["ndcg_10"])


def test_both_signatures_agree_with_the_trees_own_scores(trees_model):
    """Same seed, same data: the exported forest scores every list as the fitted Keras/TF-DF model."""
    job, _, model, inputs = trees_model
    assert loading.op_packages(job.serving_model_dir) == ["tensorflow_decision_forests"]
    served = loading.load(job.serving_model_dir)
    records = read_records(f"{job.eval_files[0].rsplit('/', 1)[0]}/*.gz")[:12]
    out = served.signatures["serving_default"](examples=tf.constant(records))
    features, _ = next(iter(inputs.dataset(job.eval_files, train=False, batch_size=len(records))))
    own = model(features, training=False).numpy()
    mask = out["mask"].numpy()
    assert mask.tolist() == features[MASK_KEY].numpy().tolist()
    np.testing.assert_allclose(out["scores"].numpy()[mask], own[mask], atol=1e-5)
    # The scores rank: not a constant.
    assert np.ptp(own[mask]) > 0

    # predict_tensors on the first list's columns (the serving check builds the request).
    logs, expectations, failures = check_executor.build_requests(
        job.serving_model_dir, records[:1], {f.name for f in inputs.feature_set.context}, "ranker", 1, []
    )
    assert not failures
    tensors_request = logs[1].predict_log.request
    assert tensors_request.model_spec.signature_name == "predict_tensors"
    tensors = {k: tf.constant(tf.make_ndarray(v)) for k, v in tensors_request.inputs.items()}
    single = served.signatures["predict_tensors"](**tensors)["scores"].numpy()
    np.testing.assert_allclose(single, out["scores"].numpy()[0][mask[0]], atol=1e-5)


def test_a_fresh_serving_process_loads_the_trees_with_decision_forests_ops_only(trees_model, tmp_path):
    """The ServingCheck probe (``python -I``, TensorFlow only) imports TF-DF because the graph uses its ops."""
    job, _, _, inputs = trees_model
    records = read_records(f"{job.eval_files[0].rsplit('/', 1)[0]}/*.gz")[:8]
    context = {f.name for f in inputs.feature_set.context}
    logs, expectations, failures = check_executor.build_requests(
        job.serving_model_dir, records, context, "ranker", 4, [10]
    )
    assert not failures
    result = check_executor.run_probe(job.serving_model_dir, logs, expectations, 3, 300, str(tmp_path))
    assert result["failures"] == []
    assert result["op_packages"] == ["tensorflow_decision_forests"]
    assert result["answered"] == len(logs)
    assert result["leaked_modules"] == []


def test_the_trees_train_from_row_files_under_the_work_dir_holding_out_every_tenth_list(transform_run, tmp_path):
    """YDF reads the rows from files written under the work dir (none left after), not from
    TF-DF's in-memory accumulators; its model files stay there too, not in a system temp folder."""
    inputs = FnInputs.from_paths(transform_run.schema_path, transform_run.transform_graph_path, {"batch_size": 16})
    model = build_model(inputs.model_inputs, hparams.fixed(scorer="trees", trees=5, tree_depth=3), seed=0)
    train = inputs.dataset(transform_run.split_files("train"), train=False)
    work = tmp_path / "work"
    fitted = model.fit_lists(train, str(work))

    assert not (work / "trees_data").exists()
    assert (work / "ydf" / "model").is_dir()
    width = inputs.model_inputs.context_block + inputs.model_inputs.document_block
    width += len(inputs.model_inputs.context_ids) + len(inputs.model_inputs.document_ids)
    features = model.gbt.make_inspector().features()
    assert sorted(f.name for f in features) == sorted(f"x.{j}" for j in range(width))  # every column an input
    # Every real document of the lists that are not held out (every 10th list is).
    lists, expected = 0, 0
    for features_, labels in train:
        real = features_[MASK_KEY].numpy() & (labels.numpy() >= 0)
        for row in real:
            expected += int(row.sum()) if lists % 10 != 9 else 0
            lists += 1
    assert lists > 10 and fitted["train_documents"] == expected
