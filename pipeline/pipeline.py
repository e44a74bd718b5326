"""The pipeline definition, shared by the local runner and (later) the KFP/Vertex compiler."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

# TFX's modules by name, not ``tfx.v1``: the v1 facade also imports the Google Cloud AI
# Platform extensions (~160 MiB of resident memory in every run process, unused locally).
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.components.trainer.component import Trainer
from tfx.components.transform.component import Transform
from tfx.dsl.components.base import base_node, executor_spec
from tfx.dsl.components.common.importer import Importer
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy
from tfx.orchestration import data_types
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import example_gen_pb2, range_config_pb2, trainer_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel
from tfx.utils import io_utils

from components.elwc_example_gen import ElwcExampleGen
from components.elwc_example_gen.events import EventsOptions
from components.elwc_example_gen.formats import FormatOptions
from components.elwc_example_gen.resolver import latest_spans
from components.propensity_estimator import PropensityEstimator, RankingTrainer
from components.ranking_evaluator import RankingEvaluator
from components.ranking_evaluator.component import ServedBaseline
from components.ranking_evaluator.gate import Gate
from components.ranking_tuner import RankingTuner
from components.registry_pusher import RegistryPusher
from components.registry_pusher.backends import open_registry
from components.serving_check import ServingCheck
from modules.features import DEFAULT_SCHEMA_PATH
from modules.training.config import REQUIRE_HYPERPARAMETERS_KEY, TUNER_CONFIG_KEY
from modules.transform.preprocessing import OVERRIDES_CONFIG_KEY, SCHEMA_CONFIG_KEY
from pipeline.config import Config

if TYPE_CHECKING:
    from pipeline.vertex_training import VertexSpec

PREPROCESSING_FN = "modules.transform.preprocessing.preprocessing_fn"
TUNER_FN = "modules.training.tuner.tuner_fn"
RUN_FN = "modules.training.trainer.run_fn"
TUNER_ID = "Tuner"
HYPERPARAMETERS_IMPORTER_ID = "HyperparametersImporter"
HYPERPARAMETERS_RESOLVER_ID = "LatestHyperparametersResolver"
TRAINER_ID = "Trainer"


def schema_path(config: Config) -> str:
    return config.schema_path or str(DEFAULT_SCHEMA_PATH)


def _example_gen(config: Config, schema: Channel, range_config) -> ElwcExampleGen:
    examples = config.examples
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
                    example_gen_pb2.SplitConfig.Split(name="test", hash_buckets=examples.test_buckets),
                ]
            )
        ),
        range_config=range_config,
        max_list_size=examples.max_list_size,
        format_options=FormatOptions(
            format=examples.format,
            columns=dict(examples.columns),
            letor_features=dict(examples.letor_features),
            on_corrupt_file=examples.on_corrupt_file,
            documents_field=examples.documents_field,
        ),
        max_bad_row_fraction=examples.max_bad_row_fraction,
        events=EventsOptions(**dataclasses.asdict(examples.events)) if examples.events else None,
    )


@dataclasses.dataclass(frozen=True)
class PipelineParameters:
    """Execution parameters that a compiled pipeline exposes as runtime parameters.

    Locally they are plain values from the config; ``pipeline.kubeflow`` replaces
    them with ``RuntimeParameter``s whose defaults come from the same config.
    """

    range_config: range_config_pb2.RangeConfig | data_types.RuntimeParameter | None
    train_args: trainer_pb2.TrainArgs | data_types.RuntimeParameter
    tuner_train_args: trainer_pb2.TrainArgs | data_types.RuntimeParameter
    tuner_trials: int | data_types.RuntimeParameter
    # Where ImportSchemaGen reads the schema at run time, if not the config's
    # path (a compiled pipeline reads the copy inside its container image).
    schema_file: str | None = None
    # Vertex AI training jobs for the Tuner's trials and the Trainer (compiled for Vertex).
    vertex: VertexSpec | None = None
    # The version the registry serves as the pipeline is built (0: none). Only a cache
    # key for the RankingEvaluator (it reads the registry again when it runs), so that a
    # rollback or a new registration is never judged from cache.
    served_version: int = 0

    @classmethod
    def from_config(cls, config: Config) -> PipelineParameters:
        return cls(
            range_config=span_range_config(config.examples.span),
            train_args=trainer_pb2.TrainArgs(num_steps=config.training.train_steps),
            tuner_train_args=trainer_pb2.TrainArgs(num_steps=config.tuner.train_steps),
            tuner_trials=config.tuner.max_trials,
            served_version=_served_version(config),
        )


def span_range_config(span: int | None) -> range_config_pb2.RangeConfig | None:
    """Exactly ``span``; None means the latest span (the driver's default)."""
    if span is None:
        return None
    return range_config_pb2.RangeConfig(
        static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)
    )


def rolling_window(example_gen: ElwcExampleGen, num_spans: int) -> Channel:
    """The Examples of the latest ``num_spans`` spans (latest version of each), or this run's for 1.

    In a synchronous pipeline a node's output channel holds only the current
    run's artifact, so the window reads the ExampleGen's outputs of all runs
    (a producer-filtered channel) instead; consumers must then be ordered after
    the ExampleGen explicitly (``add_upstream_node``), as no data edge does it.
    """
    if num_spans <= 1:
        return example_gen.outputs["examples"]
    every_run = Channel(type=standard_artifacts.Examples, producer_component_id=example_gen.id, output_key="examples")
    return latest_spans(every_run, n=num_spans)


def create_components(config: Config, params: PipelineParameters | None = None) -> list:
    """All components of the ranking pipeline, wired through their channels."""
    params = params or PipelineParameters.from_config(config)
    training = config.training
    schema_gen = ImportSchemaGen(schema_file=params.schema_file or schema_path(config))
    example_gen = _example_gen(config, schema_gen.outputs["schema"], params.range_config)
    training_examples = rolling_window(example_gen, config.examples.rolling_window_spans)
    # Read now, at definition time: Transform ignores its Schema input for ELWC.
    schema_text = io_utils.read_string_file(schema_path(config))
    transform = Transform(
        examples=training_examples,
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config={SCHEMA_CONFIG_KEY: schema_text, OVERRIDES_CONFIG_KEY: dict(config.transform.overrides)},
        # The Trainer applies the Transform graph to raw ELWC itself (the same
        # path as serving), so nothing is materialized.
        materialize=False,
        # No pre/post-transform statistics: nothing reads them, and the post-transform ones
        # cost a second pass transforming every list (time, and memory growing with the split).
        disable_statistics=True,
    )
    transform.add_upstream_node(example_gen)  # The rolling window has no data edge to it.
    training_custom_config = {**dataclasses.asdict(training), REQUIRE_HYPERPARAMETERS_KEY: not config.tuner.enabled}
    eval_args = trainer_pb2.EvalArgs(num_steps=training.eval_steps or None)

    components = [schema_gen, example_gen, transform]
    # training.position_bias ipw: propensities fitted on the train split feed the Tuner and the Trainer.
    propensities = None
    if training.position_bias == "ipw":
        estimator = PropensityEstimator(examples=training_examples, schema=schema_gen.outputs["schema"])
        estimator.add_upstream_node(example_gen)  # The rolling window has no data edge to it.
        propensities = estimator.outputs["propensities"]
        components.append(estimator)
    tuner_custom_config = {**training_custom_config, TUNER_CONFIG_KEY: dataclasses.asdict(config.tuner)}
    trainer_class, tuner_extra, trainer_extra = Trainer, {}, {}
    if params.vertex is not None:
        # The same components, run as Vertex AI training jobs with worker pools
        # (imported here: the Google Cloud clients cost seconds to import).
        from tfx.extensions.google_cloud_ai_platform.trainer.component import Trainer as VertexTrainer

        from components.ranking_tuner import vertex_executor as vertex_tuner_executor
        from pipeline.vertex_training import vertex_trainer_args, vertex_tune_args, vertex_tuner_args

        training_custom_config = {**training_custom_config, **vertex_trainer_args(config, params.vertex)}
        tuner_custom_config = {**tuner_custom_config, **vertex_tuner_args(config, params.vertex)}
        trainer_class = VertexTrainer
        if propensities is not None:
            from components.propensity_estimator import vertex_trainer

            trainer_extra = {"custom_executor_spec": executor_spec.ExecutorClassSpec(vertex_trainer.Executor)}
        tuner_extra = {
            "tune_args": vertex_tune_args(params.vertex),
            "custom_executor_spec": executor_spec.ExecutorClassSpec(vertex_tuner_executor.Executor),
        }
    if config.tuner.enabled:
        tuner = RankingTuner(
            tuner_fn=TUNER_FN,
            examples=training_examples,
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            max_trials=params.tuner_trials,
            train_args=params.tuner_train_args,
            eval_args=eval_args,
            custom_config=tuner_custom_config,
            propensities=propensities,
            **tuner_extra,
        ).with_id(TUNER_ID)
        hyperparameters = tuner.outputs["best_hyperparameters"]
        components.append(tuner)
    else:
        source, hyperparameters = _earlier_hyperparameters(config)
        components.append(source)

    if propensities is not None:
        # TFX's Trainer with the propensities as one more input (same executor, Vertex's or local).
        trainer_class, trainer_extra = RankingTrainer, {**trainer_extra, "propensities": propensities}
    trainer = trainer_class(
        run_fn=RUN_FN,
        examples=training_examples,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        hyperparameters=hyperparameters,
        train_args=params.train_args,
        eval_args=eval_args,
        custom_config=training_custom_config,
        **trainer_extra,
    ).with_id(TRAINER_ID)
    evaluate_and_push = _evaluate_and_push(
        config, params, example_gen, training_examples, schema_gen, trainer, propensities
    )
    return components + [trainer, *evaluate_and_push]


def _served_version(config: Config) -> int:
    """The version the registry serves as the pipeline is built (0: none): part of the
    evaluator's cache key, so a rollback or a new registration is never judged from cache."""
    registry = open_registry(
        config.registry.backend,
        config.registry_root,
        config.registry.mlflow_tracking_uri or "",
        config.registry.mlflow_experiment,
    )
    return registry.serving_version(config.model_name) or 0


def _evaluate_and_push(
    config: Config, params: PipelineParameters, example_gen, training_examples, schema_gen, trainer, propensities=None
) -> list:
    """RankingEvaluator (blessing gate against the served version) -> ServingCheck -> RegistryPusher.

    The candidate, the registry's served version and a trivial ranker are judged on the
    same lists (the test split of the newest span); the Pusher records the spans the
    model was trained on (the rolling window).
    """
    evaluation = config.evaluation
    evaluator = RankingEvaluator(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        model=trainer.outputs["model"],
        # The baseline is the version the registry serves now (rollback-aware).
        served_baseline=ServedBaseline(
            model_name=config.model_name,
            registry_root=config.registry_root,
            backend=config.registry.backend,
            mlflow_tracking_uri=config.registry.mlflow_tracking_uri or "",
            mlflow_experiment=config.registry.mlflow_experiment,
            served_version=params.served_version,
        ),
        gate=Gate(
            evaluation.metric,
            max_regression=evaluation.max_regression,
            min_lift=evaluation.min_lift,
            min_value=evaluation.min_value,
        ),
        batch_size=evaluation.batch_size,
        slice_features=tuple(evaluation.slices),
        # training.position_bias ipw: click labels are judged propensity-weighted, as the Trainer weighted them.
        propensities=propensities,
        ipw_max_weight=config.training.ipw_max_weight,
    )
    # A blessed candidate must also load and answer real requests in a plain TensorFlow
    # process (as TF Serving would); the pushed copy carries those requests as warmup.
    serving_check = ServingCheck(
        model=trainer.outputs["model"],
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        model_blessing=evaluator.outputs["blessing"],
        model_name=config.model_name,
    )
    pusher = RegistryPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=serving_check.outputs["blessing"],
        model_evaluation=evaluator.outputs["evaluation"],
        model_run=trainer.outputs["model_run"],
        examples=training_examples,
        registry_root=config.registry_root,
        model_name=config.model_name,
        backend=config.registry.backend,
        mlflow_tracking_uri=config.registry.mlflow_tracking_uri or "",
        mlflow_experiment=config.registry.mlflow_experiment,
    )
    return [evaluator, serving_check, pusher]


def _earlier_hyperparameters(config: Config) -> tuple[base_node.BaseNode, Channel]:
    """Retraining: hyperparameters from an Importer (URI given) or the latest Tuner output in MLMD."""
    if config.tuner.hyperparameters_uri:
        importer = Importer(
            source_uri=config.tuner.hyperparameters_uri,
            artifact_type=standard_artifacts.HyperParameters,
        ).with_id(HYPERPARAMETERS_IMPORTER_ID)
        return importer, importer.outputs["result"]
    resolver = Resolver(
        strategy_class=LatestArtifactStrategy,
        hyperparameters=Channel(
            type=standard_artifacts.HyperParameters,
            producer_component_id=TUNER_ID,
            output_key="best_hyperparameters",
        ),
    ).with_id(HYPERPARAMETERS_RESOLVER_ID)
    return resolver, resolver.outputs["hyperparameters"]


def create_pipeline(
    config: Config, metadata_connection_config=None, params: PipelineParameters | None = None
) -> tfx_pipeline.Pipeline:
    return tfx_pipeline.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=create_components(config, params),
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_args),
    )


def local_metadata_config(config: Config):
    """MLMD for a local run: SQLite at ``metadata_path``, or MySQL if ``metadata.mysql.host`` is set."""
    from pipeline.metadata_connection import connection_config

    return connection_config(config)
