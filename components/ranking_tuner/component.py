"""RankingTuner: TFX's Tuner whose number of trials can be a runtime parameter."""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.components.tuner.component import Tuner
from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import data_types
from tfx.proto import trainer_pb2, tuner_pb2
from tfx.types import standard_artifacts
from tfx.utils import json_utils

from components.ranking_tuner import executor
from components.ranking_tuner.spec import RankingTunerSpec


class RankingTuner(Tuner):
    """Same inputs, outputs and ``tuner_fn`` contract as ``tfx.components.Tuner``."""

    SPEC_CLASS = RankingTunerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        tuner_fn: str,
        max_trials: int | data_types.RuntimeParameter,
        schema: types.BaseChannel | None = None,
        transform_graph: types.BaseChannel | None = None,
        train_args: trainer_pb2.TrainArgs | data_types.RuntimeParameter | None = None,
        eval_args: trainer_pb2.EvalArgs | None = None,
        tune_args: tuner_pb2.TuneArgs | None = None,
        custom_config: dict[str, Any] | None = None,
        custom_executor_spec: executor_spec.ExecutorSpec | None = None,
        propensities: types.BaseChannel | None = None,
    ):
        spec = RankingTunerSpec(
            examples=examples,
            schema=schema,
            transform_graph=transform_graph,
            tuner_fn=tuner_fn,
            train_args=train_args or trainer_pb2.TrainArgs(),
            eval_args=eval_args or trainer_pb2.EvalArgs(),
            tune_args=tune_args,
            max_trials=max_trials,
            custom_config=json_utils.dumps(custom_config),
            propensities=propensities,
            best_hyperparameters=types.Channel(type=standard_artifacts.HyperParameters),
            tuner_results=types.Channel(type=standard_artifacts.TunerResults),
        )
        # Tuner.__init__ builds a plain TunerSpec: skip it.
        base_component.BaseComponent.__init__(self, spec=spec, custom_executor_spec=custom_executor_spec)
