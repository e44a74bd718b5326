"""Compiling the pipeline for Vertex AI Pipelines and Kubeflow Pipelines 2.x.

The same ``create_pipeline`` as the local run, compiled by TFX's
``KubeflowV2DagRunner`` into a KFP v2 ``PipelineJob`` JSON (what Vertex AI
runs); its ``pipelineSpec`` is what a Kubeflow Pipelines 2.x cluster accepts.
No KFP v1 (Argo YAML) target: the kfp v1 SDK needs protobuf < 4, which would
put the whole stack on pure-Python protobuf.

The span to process, the training steps and the tuner's trials and steps are
runtime parameters of the compiled pipeline; their defaults come from the config.
"""

from __future__ import annotations

import dataclasses
import json
import os

from tfx.orchestration import data_types
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner
from tfx.utils import proto_utils

from pipeline.config import Config, ConfigError
from pipeline.pipeline import PipelineParameters, create_pipeline, span_range_config
from pipeline.vertex_training import VertexSpec

TARGETS = ("vertex", "kubeflow")
# Where kubeflow/Dockerfile puts this repository inside the image.
CONTAINER_SOURCE_ROOT = "/ltr"
CONTAINER_SCHEMA_PATH = f"{CONTAINER_SOURCE_ROOT}/schemas/schema.pbtxt"
# The container's entry point for every component (also the Dockerfile's ENTRYPOINT).
CONTAINER_COMMAND = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]

# Runtime parameter names, as they appear in the compiled spec.
RANGE_CONFIG_PARAM = "range-config"
TRAIN_ARGS_PARAM = "train-args"
TUNER_TRAIN_ARGS_PARAM = "tuner-train-args"
TUNER_TRIALS_PARAM = "tuner-max-trials"


def runtime_parameters(config: Config) -> PipelineParameters:
    """RuntimeParameters with the config's values as defaults.

    ``range-config`` is a RangeConfig as JSON: empty means the latest span,
    ``{"static_range": {"start_span_number": 3, "end_span_number": 3}}`` span 3.
    ``train-args`` / ``tuner-train-args`` are TrainArgs as JSON (``{"num_steps": 300}``).
    """
    range_config = span_range_config(config.examples.span)
    return PipelineParameters(
        range_config=data_types.RuntimeParameter(
            name=RANGE_CONFIG_PARAM,
            ptype=str,
            default=proto_utils.proto_to_json(range_config) if range_config else "",
        ),
        train_args=data_types.RuntimeParameter(
            name=TRAIN_ARGS_PARAM, ptype=str, default=json.dumps({"num_steps": config.training.train_steps})
        ),
        tuner_train_args=data_types.RuntimeParameter(
            name=TUNER_TRAIN_ARGS_PARAM, ptype=str, default=json.dumps({"num_steps": config.tuner.train_steps})
        ),
        tuner_trials=data_types.RuntimeParameter(name=TUNER_TRIALS_PARAM, ptype=int, default=config.tuner.max_trials),
        # The bundled schema, as the image holds it; a schema of your own must be a URI
        # the containers can read (gs://...).
        schema_file=None if config.schema_path else CONTAINER_SCHEMA_PATH,
        vertex=vertex_spec(config) if config.cloud.vertex_training else None,
    )


def vertex_spec(config: Config) -> VertexSpec:
    cloud = config.cloud
    if not cloud.project:
        raise ConfigError("cloud.vertex_training needs cloud.project")
    return VertexSpec(
        project=cloud.project,
        region=cloud.region,
        image_uri=cloud.image,
        machine_type=cloud.machine_type,
        accelerator_type=cloud.accelerator_type,
        accelerator_count=cloud.accelerator_count,
        ps_machine_type=cloud.ps_machine_type,
        parallel_trials=cloud.parallel_trials,
    )


def _defaults(params: PipelineParameters) -> dict[str, object]:
    """The runtime parameters' defaults, also written into the job's runtimeConfig."""
    values = {}
    for field in dataclasses.fields(params):
        value = getattr(params, field.name)
        if isinstance(value, data_types.RuntimeParameter):
            values[value.name] = value.default
    return values


def compile_pipeline(config: Config, target: str = "vertex", output_dir: str = "kubeflow") -> str:
    """Writes the compiled pipeline into ``output_dir``; returns the file path.

    ``vertex``: ``<name>_pipeline.json``, a PipelineJob for Vertex AI Pipelines.
    ``kubeflow``: ``<name>_pipeline_spec.json``, its PipelineSpec for KFP 2.x.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown compile target '{target}' (expected one of {TARGETS})")
    if config.cloud.vertex_training and target != "vertex":
        raise ConfigError("cloud.vertex_training runs the Trainer and Tuner as Vertex AI jobs: compile for vertex")
    if config.examples.rolling_window_spans > 1:
        # TFX 1.15's Kubeflow V2 compiler takes only plain channels, not the
        # resolver-function graph (canned rolling_range) the window is built from.
        raise ConfigError(
            f"examples.rolling_window_spans = {config.examples.rolling_window_spans}: the rolling window runs "
            "locally only; TFX 1.15's Kubeflow V2 / Vertex compiler cannot compile its resolver function. "
            "Compile with rolling_window_spans: 1"
        )
    os.makedirs(output_dir, exist_ok=True)
    job_file = f"{config.pipeline_name}_pipeline.json"
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            display_name=config.cloud.display_name or config.pipeline_name,
            default_image=config.cloud.image,
            default_commands=CONTAINER_COMMAND,
            # Schema 2.1 records each runtime parameter's type and default value.
            use_pipeline_spec_2_1=True,
        ),
        output_dir=output_dir,
        output_filename=job_file,
    )
    params = runtime_parameters(config)
    runner.run(
        create_pipeline(config, params=params),
        parameter_values=_defaults(params),
        write_out=True,
    )
    job_path = os.path.join(output_dir, job_file)
    if target == "vertex":
        return job_path
    with open(job_path) as handle:
        spec = json.load(handle)["pipelineSpec"]
    os.remove(job_path)
    spec_path = os.path.join(output_dir, f"{config.pipeline_name}_pipeline_spec.json")
    with open(spec_path, "w") as handle:
        json.dump(spec, handle, indent=2, sort_keys=True)
    return spec_path
