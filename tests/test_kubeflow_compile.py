"""`ltr compile`: the KFP v2 spec matches the local pipeline (components, edges, parameters, image)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline.cli import main
from pipeline.config import ConfigError, apply_overrides, load_config
from pipeline.kubeflow import CONTAINER_COMMAND, compile_pipeline
from pipeline.pipeline import create_pipeline

REPO = Path(__file__).resolve().parent.parent
IMAGE = "europe-docker.pkg.dev/p/ltr/ltr:test"
RUNTIME_PARAMETERS = {"range-config", "train-args", "tuner-train-args", "tuner-max-trials"}


def _config(tmp_path, **overrides):
    base = {"cloud.image": IMAGE, "pipeline_root": "gs://bucket/ltr/pipeline", "data_root": "gs://bucket/ltr/data"}
    return apply_overrides(load_config(), {**base, **overrides}).resolved(tmp_path)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("kfp")
    config = _config(tmp_path, **{"examples.span": 3, "training.train_steps": 77, "tuner.max_trials": 5})
    path = compile_pipeline(config, target="vertex", output_dir=str(tmp_path))
    with open(path) as handle:
        return config, json.load(handle)


def _local_graph(config) -> dict[str, set[str]]:
    pipeline = create_pipeline(config)
    return {c.id: {u.id for u in c.upstream_nodes} for c in pipeline.components}


def _node_of(task: str) -> str:
    """Compiled task -> local node: the V2 compiler splits a Resolver into one task per channel."""
    return re.sub(r"-[a-z-]+-resolver$", "", task)


def _compiled_graph(tasks: dict) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, task in tasks.items():
        graph.setdefault(_node_of(name), set()).update(_node_of(d) for d in task.get("dependentTasks", []))
    return graph


def test_spec_parses_strictly_as_kfp_pipeline_spec(compiled):
    _, job = compiled
    spec = json_format.ParseDict(job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    assert spec.schema_version == "2.1.0"
    assert spec.pipeline_info.name == "ltr"


def test_same_components_and_dependencies_as_the_local_pipeline(compiled):
    config, job = compiled
    compiled_graph = _compiled_graph(job["pipelineSpec"]["root"]["dag"]["tasks"])
    assert compiled_graph == _local_graph(config)
    assert "Tuner" in compiled_graph and compiled_graph["Trainer"] >= {"Tuner", "Transform", "ElwcExampleGen"}


def test_runtime_parameters_have_the_config_defaults(compiled):
    _, job = compiled
    inputs = job["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]
    assert set(inputs) == RUNTIME_PARAMETERS
    values = job["runtimeConfig"]["parameterValues"]
    assert json.loads(values["range-config"]) == {"static_range": {"start_span_number": 3, "end_span_number": 3}}
    assert json.loads(values["train-args"]) == {"num_steps": 77}
    assert values["tuner-max-trials"] == 5
    # Components take them from the pipeline's parameters, not from constants.
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    trainer_params = tasks["Trainer"]["inputs"]["parameters"]
    assert trainer_params["train_args"]["componentInputParameter"] == "train-args"
    assert tasks["ElwcExampleGen"]["inputs"]["parameters"]["range_config"]["componentInputParameter"] == "range-config"
    assert tasks["Tuner"]["inputs"]["parameters"]["max_trials"]["componentInputParameter"] == "tuner-max-trials"


def test_every_component_runs_in_the_project_image(compiled):
    _, job = compiled
    executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
    containers = [e["container"] for e in executors.values() if "container" in e]
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert len(containers) == len([t for t in tasks if not t.endswith("-resolver")])
    assert {c["image"] for c in containers} == {IMAGE}
    assert all(c["command"] == CONTAINER_COMMAND for c in containers)
    # The ExampleGen resolves its span before the cache check, so a new span is never a cache hit.
    example_gen = executors["ElwcExampleGen_executor"]["container"]
    assert "preCacheCheck" in example_gen["lifecycle"]
    # The bundled schema is read from inside the image.
    schema_gen = job["pipelineSpec"]["root"]["dag"]["tasks"]["ImportSchemaGen"]["inputs"]["parameters"]
    assert schema_gen["schema_file"]["runtimeValue"]["constant"] == "/ltr/schemas/schema.pbtxt"


def test_retraining_spec_has_no_tuner(tmp_path):
    config = _config(tmp_path, **{"tuner.enabled": False})
    path = compile_pipeline(config, target="kubeflow", output_dir=str(tmp_path))
    assert path.endswith("ltr_pipeline_spec.json")
    spec = json.loads(Path(path).read_text())
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    tasks = spec["root"]["dag"]["tasks"]
    assert "Tuner" not in tasks
    assert "LatestHyperparametersResolver" in tasks
    assert "tuner-max-trials" not in spec["root"]["inputDefinitions"]["parameters"]

    config = _config(tmp_path, **{"tuner.enabled": False, "tuner.hyperparameters_uri": "gs://b/hp/1"})
    spec = json.loads(Path(compile_pipeline(config, "kubeflow", str(tmp_path / "imp"))).read_text())
    importer = spec["root"]["dag"]["tasks"]["HyperparametersImporter"]
    assert "HyperparametersImporter" in spec["root"]["dag"]["tasks"]["Trainer"]["dependentTasks"]
    assert importer["componentRef"]["name"]
    assert "gs://b/hp/1" in json.dumps(spec["deploymentSpec"]["executors"])


def test_vertex_training_swaps_in_vertex_jobs_with_worker_pools(tmp_path):
    overrides = {
        "cloud.vertex_training": True,
        "cloud.project": "p",
        "cloud.parallel_trials": 3,
        "training.strategy": "multi_worker",
        "training.workers": 3,
    }
    job = json.loads(Path(compile_pipeline(_config(tmp_path, **overrides), "vertex", str(tmp_path))).read_text())
    executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
    trainer_args = executors["Trainer_executor"]["container"]["args"]
    assert trainer_args[1] == "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor"
    assert executors["Tuner_executor"]["container"]["args"][1] == "components.ranking_tuner.vertex_executor.Executor"
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    trainer_config = json.loads(tasks["Trainer"]["inputs"]["parameters"]["custom_config"]["runtimeValue"]["constant"])
    pools = trainer_config["ai_platform_training_args"]["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 2]  # chief + 2 workers
    assert {p["container_spec"]["image_uri"] for p in pools} == {IMAGE}
    assert trainer_config["ai_platform_enable_vertex"] and trainer_config["strategy"] == "multi_worker"
    # The tuner's trials stay a runtime parameter on Vertex too.
    assert tasks["Tuner"]["inputs"]["parameters"]["max_trials"]["componentInputParameter"] == "tuner-max-trials"
    with pytest.raises(ConfigError, match="compile for vertex"):
        compile_pipeline(_config(tmp_path, **overrides), "kubeflow", str(tmp_path / "k"))


def test_ipw_adds_the_propensity_estimator_before_tuner_and_trainer(tmp_path):
    config = _config(tmp_path, **{"training.position_bias": "ipw"})
    job = json.loads(Path(compile_pipeline(config, "vertex", str(tmp_path))).read_text())
    json_format.ParseDict(job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    graph = _compiled_graph(tasks)
    assert graph == _local_graph(config)
    assert graph["PropensityEstimator"] >= {"ElwcExampleGen", "ImportSchemaGen"}
    assert "PropensityEstimator" in graph["Trainer"] and "PropensityEstimator" in graph["Tuner"]
    # The evaluator judges click labels with the same propensities (propensity-weighted NDCG).
    for task in ("Trainer", "Tuner", "RankingEvaluator"):
        source = tasks[task]["inputs"]["artifacts"]["propensities"]["taskOutputArtifact"]
        assert source == {"outputArtifactKey": "propensities", "producerTask": "PropensityEstimator"}
    evaluator_parameters = tasks["RankingEvaluator"]["inputs"]["parameters"]
    assert float(evaluator_parameters["ipw_max_weight"]["runtimeValue"]["constant"]) == 10.0
    executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
    assert executors["Trainer_executor"]["container"]["args"][1] == "components.propensity_estimator.trainer.Executor"
    # Vertex training jobs: the Vertex Trainer's executor, with the propensities input.
    vertex = _config(tmp_path, **{"training.position_bias": "ipw", "cloud.vertex_training": True, "cloud.project": "p"})
    job = json.loads(Path(compile_pipeline(vertex, "vertex", str(tmp_path / "v"))).read_text())
    executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
    assert (
        executors["Trainer_executor"]["container"]["args"][1]
        == "components.propensity_estimator.vertex_trainer.Executor"
    )
    # none / bias_tower: no estimator, TFX's own Trainer.
    for mode in ("none", "bias_tower"):
        assert "PropensityEstimator" not in _local_graph(_config(tmp_path, **{"training.position_bias": mode}))


def test_rolling_window_is_refused_clearly(tmp_path):
    with pytest.raises(ConfigError, match="rolling_window_spans = 3: the rolling window runs locally only"):
        compile_pipeline(_config(tmp_path, **{"examples.rolling_window_spans": 3}), "vertex", str(tmp_path))


def test_cli_compile_writes_into_the_output_dir(tmp_path, capsys):
    assert main(["compile", "--target", "kubeflow", "--output-dir", str(tmp_path), "--tuner", "off"]) == 0
    assert "Compiled pipeline 'ltr' for kubeflow" in capsys.readouterr().out
    assert (tmp_path / "ltr_pipeline_spec.json").is_file()


def test_dockerfile_reproduces_the_tested_environment():
    """The Dockerfile's stages, copied paths and entry points: tests/test_dockerfile.py."""
    dockerfile = (REPO / "kubeflow" / "Dockerfile").read_text()
    assert "uv pip sync --system requirements.lock" in dockerfile
    assert "COPY schemas ./schemas" in dockerfile and "WORKDIR /ltr" in dockerfile
