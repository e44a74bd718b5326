"""The Trainer and Tuner with the PropensityEstimator's output as an input (training.position_bias: ipw).

TFX's Trainer takes no custom input; ``RankingTrainer`` is TFX's Trainer (or the
Vertex AI Trainer, through ``custom_executor_spec``) with one more optional input,
``propensities``. Its executor hands the artifact's URI to ``run_fn`` in
``custom_config`` (``PROPENSITIES_URI_KEY``) and then runs TFX's executor
unchanged, so the propensities a model was trained with are in its lineage.
"""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.components.trainer.component import Trainer
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import json_utils

from components.propensity_estimator.spec import PROPENSITIES_KEY, Propensities
from modules.training.position_bias import PROPENSITIES_URI_KEY


def with_propensities(input_dict: dict[str, Any], exec_properties: dict[str, Any]) -> tuple[dict, dict]:
    """Moves the ``propensities`` input's URI into custom_config (and the input out of input_dict)."""
    input_dict = dict(input_dict)
    artifacts = input_dict.pop(PROPENSITIES_KEY, None) or []
    if not artifacts:
        return input_dict, exec_properties
    if len(artifacts) != 1:
        raise ValueError(f"expected one Propensities artifact, got {len(artifacts)}")
    exec_properties = dict(exec_properties)
    key = standard_component_specs.CUSTOM_CONFIG_KEY
    custom_config = json_utils.loads(exec_properties.get(key) or "null") or {}
    custom_config[PROPENSITIES_URI_KEY] = artifacts[0].uri
    exec_properties[key] = json_utils.dumps(custom_config)
    return input_dict, exec_properties


PROPENSITIES_INPUT = ChannelParameter(type=Propensities, optional=True)


class RankingTrainerSpec(standard_component_specs.TrainerSpec):
    INPUTS = {**standard_component_specs.TrainerSpec.INPUTS, PROPENSITIES_KEY: PROPENSITIES_INPUT}


class Executor(trainer_executor.GenericExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        super().Do(*split_propensities(input_dict, output_dict, exec_properties))


def split_propensities(input_dict, output_dict, exec_properties):
    input_dict, exec_properties = with_propensities(input_dict, exec_properties)
    return input_dict, output_dict, exec_properties


class RankingTrainer(Trainer):
    """TFX's Trainer (``run_fn`` form) with an optional ``propensities`` input."""

    SPEC_CLASS = RankingTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        transform_graph: types.BaseChannel,
        schema: types.BaseChannel,
        hyperparameters: types.BaseChannel,
        run_fn: str,
        train_args: trainer_pb2.TrainArgs | Any,
        eval_args: trainer_pb2.EvalArgs,
        custom_config: dict[str, Any],
        propensities: types.BaseChannel | None = None,
        custom_executor_spec: executor_spec.ExecutorSpec | None = None,
    ):
        spec = RankingTrainerSpec(
            examples=examples,
            transform_graph=transform_graph,
            schema=schema,
            hyperparameters=hyperparameters,
            train_args=train_args,
            eval_args=eval_args,
            run_fn=run_fn,
            custom_config=json_utils.dumps(custom_config),
            propensities=propensities,
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun),
        )
        # Trainer.__init__ builds a plain TrainerSpec: skip it.
        base_component.BaseComponent.__init__(self, spec=spec, custom_executor_spec=custom_executor_spec)
