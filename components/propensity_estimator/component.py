"""PropensityEstimator: fits the position-based click model's examination curve on the train split.

Runs between ExampleGen and the Tuner / Trainer when ``training.position_bias``
is ``ipw``: its ``propensities`` output (``propensities.json``: position ->
propensity relative to position 1, with the fit's diagnostics) is an input of
both, so the weights a model was trained with are in its MLMD lineage.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec

from components.propensity_estimator import executor
from components.propensity_estimator.spec import Propensities, PropensityEstimatorSpec


class PropensityEstimator(base_component.BaseComponent):
    SPEC_CLASS = PropensityEstimatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        schema: types.BaseChannel,
        split: str = "train",
        iterations: int = 400,
    ):
        super().__init__(
            spec=PropensityEstimatorSpec(
                examples=examples,
                schema=schema,
                split=split,
                iterations=iterations,
                propensities=types.Channel(type=Propensities),
            )
        )
