"""ComponentSpec of the ranking evaluator."""

from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter


class RankingEvaluatorSpec(ComponentSpec):
    PARAMETERS = {
        "metric": ExecutionParameter(type=str),
        "min_value": ExecutionParameter(type=float),
        "max_regression": ExecutionParameter(type=float),
        "batch_size": ExecutionParameter(type=int),
        "split": ExecutionParameter(type=str),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "schema": ChannelParameter(type=standard_artifacts.Schema),
        "model": ChannelParameter(type=standard_artifacts.Model),
        "baseline_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation),
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }
