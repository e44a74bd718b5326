"""RankingEvaluator: scores the eval split with the candidate and the baseline model.

A custom component rather than TFMA's Evaluator: the Examples are ELWC
(``payload_format=FORMAT_PROTO``) read through a DataView, which TFMA 0.46 cannot
decode (its extractors expect tf.Example or a raw-record TFXIO with a model that
parses it, and have no list-wise slicing of ELWC). The evaluator instead feeds the
serialized ELWC to each model's ``serving_default`` signature, exactly what TF
Serving would receive, and computes NDCG@1/5/10 and MRR in numpy.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts

from components.ranking_evaluator import executor
from components.ranking_evaluator.gate import Gate
from components.ranking_evaluator.spec import RankingEvaluatorSpec


class RankingEvaluator(base_component.BaseComponent):
    SPEC_CLASS = RankingEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        schema: types.BaseChannel,
        model: types.BaseChannel,
        gate: Gate,
        baseline_model: types.BaseChannel | None = None,
        batch_size: int = 64,
        split: str = "eval",
    ):
        super().__init__(
            spec=RankingEvaluatorSpec(
                examples=examples,
                schema=schema,
                model=model,
                baseline_model=baseline_model,
                metric=gate.metric,
                min_value=float(gate.min_value),
                max_regression=float(gate.max_regression),
                batch_size=batch_size,
                split=split,
                evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
                blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            )
        )
