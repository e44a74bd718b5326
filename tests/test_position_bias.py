"""training.position_bias on simulated click logs: ipw weights, the bias tower, the PropensityEstimator,
and a LocalDagRunner run of the ipw pipeline with its lineage.

One module fixture runs the pipeline's ImportSchemaGen, ElwcExampleGen and Transform on the
flat labelled form of a small simulated span (label = the events' grade; positions 1-based).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import input_pb2
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.types import standard_artifacts

from components.propensity_estimator.executor import Executor as EstimatorExecutor
from components.propensity_estimator.executor import write_propensities
from components.propensity_estimator.spec import Propensities as PropensitiesArtifact
from modules.propensity import PROPENSITIES_CSV, PROPENSITIES_FILE, Propensities
from modules.training import hparams
from modules.training.inputs import FnInputs
from modules.training.position_bias import POSITION_KEY, PROPENSITIES_URI_KEY
from modules.training.trainer import METRICS_FILE, run_fn
from pipeline.click_sample import ClickSpec, schema_text, write_flat_span
from pipeline.config import ConfigError, apply_overrides, load_config
from tests.helpers import read_records, schema_artifact

SPEC = ClickSpec(spans=1, queries=150, seed=4)
# Variable names of the bias tower's layers (modules/training/position_bias.py).
TOWER_VARIABLES = ("position_embedding", "bias_hidden", "bias_logit")
TRAINING = {"strategy": "none", "epochs": 1, "seed": 0, "batch_size": 8, "list_size": 16}


def _config(home, **overrides):
    return apply_overrides(
        load_config(),
        {
            "pipeline_name": "clicks",
            "data_root": str(home / "data"),
            "pipeline_root": str(home / "pipeline"),
            "metadata_path": str(home / "metadata.sqlite"),
            "registry_root": str(home / "registry"),
            "schema_path": str(home / "schema.pbtxt"),
            **overrides,
        },
    )


@pytest.fixture(scope="module")
def clicks(tmp_path_factory):
    from pipeline.transform_run import run_transform

    home = tmp_path_factory.mktemp("clicks")
    write_flat_span(home / "data", 1, SPEC, label="clicks")
    (home / "schema.pbtxt").write_text(schema_text())
    return home, run_transform(_config(home))


@pytest.fixture(scope="module")
def propensities_uri(tmp_path_factory):
    uri = str(tmp_path_factory.mktemp("propensities"))
    write_propensities(Propensities((1.0, 0.5, 0.25, 0.05)), uri)
    return uri


def _inputs(run, **custom) -> FnInputs:
    return FnInputs.from_paths(run.schema_path, run.transform_graph_path, {**TRAINING, **custom})


def test_ipw_weights_are_inverse_propensities_of_the_positions_clipped(clicks, propensities_uri):
    _, run = clicks
    ipw = _inputs(run, position_bias="ipw", ipw_max_weight=10.0, **{PROPENSITIES_URI_KEY: propensities_uri})
    tower = _inputs(run, position_bias="bias_tower")
    features, labels, weights = next(iter(ipw.dataset(run.split_files("train"), train=True)))
    # The same batch (same seeds) with the positions as a feature, as the bias tower gets it.
    tower_features, tower_labels = next(iter(tower.dataset(run.split_files("train"), train=True)))
    assert POSITION_KEY not in features and weights.shape == labels.shape == (8, 16)
    np.testing.assert_array_equal(labels.numpy(), tower_labels.numpy())
    positions = tower_features[POSITION_KEY].numpy()
    assert positions[features["example_list_mask"].numpy()].min() >= 1  # 1-based display ranks
    table = np.array([1.0, 1.0, 2.0, 4.0, 10.0])  # position 0 (padding/missing): 1; 1/0.05 = 20 -> 10
    np.testing.assert_allclose(weights.numpy(), table[np.minimum(positions, 4)])
    assert (weights.numpy() == 10.0).any()
    # Validation is unweighted.
    assert len(next(iter(ipw.dataset(run.split_files("eval"), train=False)))) == 2


def test_ipw_without_propensities_is_a_clear_error(clicks):
    _, run = clicks
    with pytest.raises(ValueError, match="no Propensities artifact reached training"):
        _ = _inputs(run, position_bias="ipw").model_inputs


def _train(run, out, **custom) -> dict:
    run_fn(
        FnArgs(
            train_files=run.split_files("train"),
            eval_files=run.split_files("eval"),
            transform_graph_path=run.transform_graph_path,
            schema_path=run.schema_path,
            serving_model_dir=str(out / "serving"),
            model_run_dir=str(out / "model_run"),
            train_steps=12,
            eval_steps=None,
            custom_config={**TRAINING, **custom},
            hyperparameters=hparams.fixed(batch_norm=False).get_config(),
        )
    )
    with open(out / "model_run" / METRICS_FILE) as handle:
        return json.load(handle)


def _with_positions(record: bytes, positions: list[int]) -> bytes:
    elwc = input_pb2.ExampleListWithContext.FromString(record)
    for example, position in zip(elwc.examples, positions, strict=True):
        example.features.feature["position"].int64_list.value[:] = [position]
    return elwc.SerializeToString()


@pytest.mark.parametrize("mode", ["none", "ipw", "bias_tower"])
def test_trainer_runs_each_setting_and_serves_without_position(clicks, propensities_uri, tmp_path, mode):
    _, run = clicks
    summary = _train(run, tmp_path, position_bias=mode, **{PROPENSITIES_URI_KEY: propensities_uri})
    assert summary["position_bias"] == mode
    assert ("propensities" in summary) == (mode == "ipw")
    if mode == "ipw":
        assert summary["propensities"] == [1.0, 0.5, 0.25, 0.05] and summary["ipw_max_weight"] == 10.0

    loaded = tf.saved_model.load(str(tmp_path / "serving"))
    for name, signature in loaded.signatures.items():
        inputs = set(signature.structured_input_signature[1])
        assert not inputs & {"position", POSITION_KEY}, (name, inputs)
    variables = [v.name for v in loaded.model_variables]
    assert variables and not [v for v in variables if any(name in v for name in TOWER_VARIABLES)]
    # The served scores do not depend on the position the items were shown at.
    records = read_records(os.path.join(run.examples_uri, "Split-test", "*.gz"))[:8]
    moved = [
        _with_positions(r, list(range(len(input_pb2.ExampleListWithContext.FromString(r).examples), 0, -1)))
        for r in records
    ]
    serve = loaded.signatures["serving_default"]
    before = serve(examples=tf.constant(records))["scores"].numpy()
    after = serve(examples=tf.constant(moved))["scores"].numpy()
    np.testing.assert_allclose(before, after, rtol=1e-6)


def test_the_bias_tower_trains_on_the_position(clicks, tmp_path):
    """The training model adds the tower's position logit; the exported ranker is the same network without it."""
    from modules.training.model import build_model
    from modules.training.position_bias import serving_model

    _, run = clicks
    inputs = _inputs(run, position_bias="bias_tower")
    model = build_model(inputs.model_inputs, hparams.fixed(batch_norm=False, dropout=0.0))
    features, _ = next(iter(inputs.dataset(run.split_files("train"), train=True)))
    ranker = serving_model(model)
    assert ranker is not model and POSITION_KEY not in ranker.input
    tower_variables = {v.name for v in model.variables} - {v.name for v in ranker.variables}
    assert {name for name in TOWER_VARIABLES if any(name in v for v in tower_variables)} == set(TOWER_VARIABLES)
    plain = {k: v for k, v in features.items() if k != POSITION_KEY}
    np.testing.assert_allclose(model(features, training=False), ranker(plain, training=False), rtol=1e-5)
    bias = model.get_layer("bias_tower")(features)
    np.testing.assert_allclose(model(features, training=True), ranker(plain, training=True) + bias, rtol=1e-4)
    shown_elsewhere = {**features, POSITION_KEY: features[POSITION_KEY] + 3}
    assert not np.allclose(model(features, training=True), model(shown_elsewhere, training=True))
    # training.bias_features: a context and a document feature feed the tower beside the position.
    with_features = _inputs(run, position_bias="bias_tower", bias_features=["query_length", "rating"])
    bias = with_features.model_inputs.position_bias
    context = [f.name for f in with_features.feature_set.context]
    document = [f.name for f in with_features.feature_set.document]
    assert bias.bias_inputs == (
        ("context_numeric", context.index("query_length"), 0),
        ("document_numeric", document.index("rating"), 0),
    )
    model = build_model(with_features.model_inputs, hparams.fixed(batch_norm=False, dropout=0.0))
    other_context = {**features, "context_numeric": features["context_numeric"] + 1.0}
    tower = model.get_layer("bias_tower")
    assert tower(features).shape == features[POSITION_KEY].shape
    assert not np.allclose(tower(features), tower(other_context))


def test_propensity_estimator_executor_writes_the_artifact(clicks, tmp_path):
    home, run = clicks
    examples = standard_artifacts.Examples()
    examples.uri = run.examples_uri
    examples.split_names = '["train", "eval", "test"]'
    output = PropensitiesArtifact()
    output.uri = str(tmp_path / "propensities")
    EstimatorExecutor().Do(
        {"examples": [examples], "schema": [schema_artifact(tmp_path, home / "schema.pbtxt")]},
        {"propensities": [output]},
        {"split": "train", "iterations": 400},
    )
    with open(os.path.join(output.uri, PROPENSITIES_FILE)) as handle:
        fitted = Propensities.from_json(handle.read())
    assert fitted.relative[0] == 1.0 and list(fitted.relative) == sorted(fitted.relative, reverse=True)
    assert 0.2 < fitted.relative[1] < 0.8  # the true value is 0.5 (few clicks in this tiny span)
    assert os.path.isfile(os.path.join(output.uri, PROPENSITIES_CSV))
    train_docs = sum(
        len(input_pb2.ExampleListWithContext.FromString(r).examples)
        for r in read_records(os.path.join(run.examples_uri, "Split-train", "*.gz"))
    )
    assert output.get_int_custom_property("impressions") == train_docs
    assert json.loads(output.get_string_custom_property("propensity")) == pytest.approx(fitted.relative, abs=1e-6)


def test_config_and_preflight_checks():
    from modules.features import load_feature_set
    from pipeline.preflight import PreflightError, check_position_bias

    with pytest.raises(ConfigError, match="position_bias.*must be one of none, ipw, bias_tower"):
        apply_overrides(load_config(), {"training.position_bias": "tower"})
    with pytest.raises(ConfigError, match="ipw_max_weight.*must be >= 1"):
        apply_overrides(load_config(), {"training.ipw_max_weight": 0.5})
    no_position = dataclasses.replace(
        load_feature_set(), features=tuple(f for f in load_feature_set().features if f.name != "position")
    )
    config = apply_overrides(load_config(), {"training.position_bias": "ipw"})
    with pytest.raises(PreflightError, match="no 'role:position' feature"):
        check_position_bias(config, no_position, "s.pbtxt")
    config = apply_overrides(load_config(), {"training.bias_features": ["price"]})
    with pytest.raises(PreflightError, match="bias features are inputs of the bias tower only"):
        check_position_bias(config, load_feature_set(), "s.pbtxt")
    config = apply_overrides(
        load_config(), {"training.position_bias": "bias_tower", "training.bias_features": ["pric"]}
    )
    with pytest.raises(PreflightError, match="names 'pric'.*did you mean 'price'"):
        check_position_bias(config, load_feature_set(), "s.pbtxt")


def test_ipw_pipeline_records_propensities_in_lineage_and_report(clicks):
    """ExampleGen -> Transform -> PropensityEstimator -> Tuner -> Trainer with LocalDagRunner (upstream cached)."""
    from tfx import v1 as tfx
    from tfx.orchestration import pipeline as tfx_pipeline

    from pipeline.lineage import format_lineage, lineage_of
    from pipeline.pipeline import create_components, local_metadata_config
    from pipeline.run_report.read import read_run
    from pipeline.run_report.render import render_run

    home, _ = clicks
    config = _config(
        home,
        **{
            "training.position_bias": "ipw",
            "training.train_steps": 8,
            "training.epochs": 1,
            "training.batch_size": 8,
            "training.strategy": "none",
            "tuner.max_trials": 1,
            "tuner.train_steps": 4,
            "tuner.epochs": 1,
        },
    )
    wanted = ["ImportSchemaGen", "ElwcExampleGen", "Transform", "PropensityEstimator", "Tuner", "Trainer"]
    components = [c for c in create_components(config) if c.id in wanted]
    assert [c.id for c in components] == wanted
    tfx.orchestration.LocalDagRunner().run(
        tfx_pipeline.Pipeline(
            pipeline_name=config.pipeline_name,
            pipeline_root=config.pipeline_root,
            components=components,
            enable_cache=True,
            metadata_connection_config=local_metadata_config(config),
            beam_pipeline_args=list(config.beam_args),
        )
    )
    data = read_run(config.metadata_path)
    states = {e.node: e.state for e in data.executions}
    assert states["PropensityEstimator"] in ("COMPLETE", "CACHED") and states["Trainer"] == "COMPLETE"
    by_node = {e.node: e for e in data.executions}
    estimated = by_node["PropensityEstimator"].outputs["propensities"][0]
    for node in ("Tuner", "Trainer"):  # both read the same artifact
        assert [a.id for a in by_node[node].inputs["propensities"]] == [estimated.id]
    with open(os.path.join(estimated.uri, PROPENSITIES_FILE)) as handle:
        values = json.load(handle)["propensity"]
    assert data.training.metrics["position_bias"] == "ipw" and data.training.metrics["propensities"] == values
    page = render_run(data)
    assert "ipw: inverse propensity weights, clipped at 10.0" in page and "estimated propensity" in page

    model = by_node["Trainer"].outputs["model"][0]
    lineage = lineage_of(config.metadata_path, model.id, version=1)
    bias = lineage["position_bias"]
    assert bias["mode"] == "ipw" and bias["propensities"]["artifact_id"] == estimated.id
    assert bias["propensities"]["values"] == values
    text = format_lineage("ranker", 1, lineage)
    assert "Position bias: ipw (weights 1/propensity, clipped at 10.0)" in text
    assert f"propensities: artifact {estimated.id} by PropensityEstimator" in text
