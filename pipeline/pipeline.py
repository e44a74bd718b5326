"""The pipeline definition, shared by the local runner and (later) the KFP/Vertex compiler."""

from __future__ import annotations

import dataclasses
import os

from tfx import v1 as tfx
from tfx.components.experimental.data_view.binder_component import DataViewBinder
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import example_gen_pb2, range_config_pb2

from components.elwc_data_view import ElwcDataView
from components.elwc_example_gen import ElwcExampleGen
from components.registry_pusher import RegistryPusher
from modules.features import DEFAULT_SCHEMA_PATH
from modules.preprocessing import SCHEMA_CONFIG_KEY
from modules.training_config import TUNER_CONFIG_KEY
from pipeline.config import Config

PREPROCESSING_FN = "modules.preprocessing.preprocessing_fn"
TUNER_FN = "modules.tuner.tuner_fn"
RUN_FN = "modules.trainer.run_fn"


def schema_path(config: Config) -> str:
    return config.schema_path or str(DEFAULT_SCHEMA_PATH)


def _example_gen(config: Config, schema: tfx.dsl.Channel) -> ElwcExampleGen:
    examples = config.examples
    range_config = None
    if examples.span is not None:
        range_config = range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(start_span_number=examples.span, end_span_number=examples.span)
        )
    return ElwcExampleGen(
        input_base=config.data_root,
        schema=schema,
        input_config=example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name="single_split", pattern=examples.input_pattern)]
        ),
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=examples.train_buckets),
                    example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=examples.eval_buckets),
                ]
            )
        ),
        range_config=range_config,
        max_list_size=examples.max_list_size,
    )


def create_components(config: Config) -> list:
    """All components of the ranking pipeline, wired through their channels."""
    training = config.training
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_path(config))
    example_gen = _example_gen(config, schema_gen.outputs["schema"])
    data_view = ElwcDataView(schema=schema_gen.outputs["schema"])
    binder = DataViewBinder(input_examples=example_gen.outputs["examples"], data_view=data_view.outputs["data_view"])
    with open(schema_path(config)) as handle:
        schema_text = handle.read()
    transform = tfx.components.Transform(
        examples=binder.outputs["output_examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config={SCHEMA_CONFIG_KEY: schema_text},
        # The Trainer applies the Transform graph to raw ELWC itself (the same
        # path as serving), so nothing is materialized.
        materialize=False,
    )
    training_custom_config = dataclasses.asdict(training)
    eval_args = tfx.proto.EvalArgs(num_steps=training.eval_steps or None)

    components = [schema_gen, example_gen, data_view, binder, transform]
    hyperparameters = None
    if config.tuner.enabled:
        tuner = tfx.components.Tuner(
            tuner_fn=TUNER_FN,
            examples=binder.outputs["output_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            train_args=tfx.proto.TrainArgs(num_steps=config.tuner.train_steps),
            eval_args=eval_args,
            custom_config={**training_custom_config, TUNER_CONFIG_KEY: dataclasses.asdict(config.tuner)},
        )
        hyperparameters = tuner.outputs["best_hyperparameters"]
        components.append(tuner)

    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=binder.outputs["output_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        hyperparameters=hyperparameters,
        train_args=tfx.proto.TrainArgs(num_steps=training.train_steps),
        eval_args=eval_args,
        custom_config=training_custom_config,
    )
    pusher = RegistryPusher(
        model=trainer.outputs["model"],
        model_run=trainer.outputs["model_run"],
        registry_root=config.registry_root,
        model_name=config.model_name,
    )
    return components + [trainer, pusher]


def create_pipeline(config: Config, metadata_connection_config=None) -> tfx_pipeline.Pipeline:
    return tfx_pipeline.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=create_components(config),
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_args),
    )


def local_metadata_config(config: Config):
    os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
    return tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
