"""ComponentSpec of the ranking evaluator."""

from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.propensity_estimator.spec import PROPENSITIES_KEY, Propensities


class RankingEvaluatorSpec(ComponentSpec):
    PARAMETERS = {
        "metric": ExecutionParameter(type=str),
        "max_regression": ExecutionParameter(type=float),
        "min_lift": ExecutionParameter(type=float),
        "min_value": ExecutionParameter(type=float, optional=True),
        "batch_size": ExecutionParameter(type=int),
        "split": ExecutionParameter(type=str),
        "slice_features": ExecutionParameter(type=str, optional=True),  # JSON list of context features
        # The registry whose served version is the baseline (no model_name: no baseline).
        "model_name": ExecutionParameter(type=str, optional=True),
        "registry_backend": ExecutionParameter(type=str, optional=True),
        "registry_root": ExecutionParameter(type=str, optional=True),
        "mlflow_tracking_uri": ExecutionParameter(type=str, optional=True),
        "mlflow_experiment": ExecutionParameter(type=str, optional=True),
        # The served version when the pipeline was built. The executor reads the registry
        # again; this only makes a rollback or a new registration change the cache key.
        "served_version": ExecutionParameter(type=int, optional=True),
        # With ``propensities`` (training.position_bias ipw): the clip of the inverse propensity gain weights.
        "ipw_max_weight": ExecutionParameter(type=float, optional=True),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "schema": ChannelParameter(type=standard_artifacts.Schema),
        "model": ChannelParameter(type=standard_artifacts.Model),
        "baseline_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
        # Click labels: every ranker is judged by propensity-weighted (counterfactual) NDCG.
        PROPENSITIES_KEY: ChannelParameter(type=Propensities, optional=True),
    }
    OUTPUTS = {
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation),
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }
