"""ComponentSpec and artifact type of the PropensityEstimator."""

from tfx.types import artifact, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

# The input key through which the Trainer and the Tuner receive the propensities.
PROPENSITIES_KEY = "propensities"


class Propensities(artifact.Artifact):
    """Examination propensity per 1-based position (``propensities.json`` / ``.csv``) and fit diagnostics."""

    # "<namespace>.<Name>": the form a KFP v2 / Vertex pipeline spec accepts for a custom type.
    TYPE_NAME = "ltr.Propensities"


class PropensityEstimatorSpec(ComponentSpec):
    PARAMETERS = {
        "split": ExecutionParameter(type=str),  # the split the propensities are fitted on
        "iterations": ExecutionParameter(type=int),  # most EM iterations
    }
    INPUTS = {
        # One Examples artifact, or several (the rolling window of spans).
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "schema": ChannelParameter(type=standard_artifacts.Schema),
    }
    OUTPUTS = {
        PROPENSITIES_KEY: ChannelParameter(type=Propensities),
    }
