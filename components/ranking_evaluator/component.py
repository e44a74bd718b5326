"""RankingEvaluator: scores one split with the candidate, the serving model and a trivial ranker.

A custom component rather than TFMA's Evaluator: the Examples are ELWC
(``payload_format=FORMAT_PROTO``) read through a DataView, which TFMA 0.46 cannot
decode (its extractors expect tf.Example or a raw-record TFXIO with a model that
parses it, and have no list-wise slicing of ELWC). The evaluator instead feeds the
serialized ELWC to each model's ``serving_default`` signature, exactly what TF
Serving would receive, and computes the pipeline's metrics (``modules.ranking_metrics``)
in numpy.

With a ``propensities`` input (``training.position_bias: ipw``, click labels) every
ranker's NDCG is propensity-weighted: each document's gain is multiplied by
``min(1 / propensity(position), ipw_max_weight)``, the trainer's weights, in DCG and
ideal DCG (Joachims et al., WSDM 2017), so the logged order's position bias does not
decide the gate.
"""

from __future__ import annotations

import dataclasses
import json

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts

from components.ranking_evaluator import executor
from components.ranking_evaluator.gate import Gate
from components.ranking_evaluator.spec import RankingEvaluatorSpec


@dataclasses.dataclass(frozen=True)
class ServedBaseline:
    """Where the baseline comes from: the version this registry serves for ``model_name``."""

    model_name: str
    registry_root: str
    backend: str = "local"
    mlflow_tracking_uri: str = ""
    mlflow_experiment: str = ""
    served_version: int = 0  # at pipeline build time (0: none); a cache key only


class RankingEvaluator(base_component.BaseComponent):
    SPEC_CLASS = RankingEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        schema: types.BaseChannel,
        model: types.BaseChannel,
        gate: Gate,
        served_baseline: ServedBaseline | None = None,
        baseline_model: types.BaseChannel | None = None,
        batch_size: int = 64,
        split: str = "test",
        slice_features: tuple[str, ...] = (),
        propensities: types.BaseChannel | None = None,
        ipw_max_weight: float = 10.0,
    ):
        registry = {}
        if served_baseline is not None:
            registry = {
                "model_name": served_baseline.model_name,
                "registry_backend": served_baseline.backend,
                "registry_root": served_baseline.registry_root,
                "mlflow_tracking_uri": served_baseline.mlflow_tracking_uri,
                "mlflow_experiment": served_baseline.mlflow_experiment,
                "served_version": served_baseline.served_version,
            }
        super().__init__(
            spec=RankingEvaluatorSpec(
                examples=examples,
                schema=schema,
                model=model,
                baseline_model=baseline_model,
                metric=gate.metric,
                max_regression=float(gate.max_regression),
                min_lift=float(gate.min_lift),
                min_value=None if gate.min_value is None else float(gate.min_value),
                batch_size=batch_size,
                split=split,
                slice_features=json.dumps(list(slice_features)),
                **registry,
                propensities=propensities,
                ipw_max_weight=None if propensities is None else float(ipw_max_weight),
                evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
                blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            )
        )
