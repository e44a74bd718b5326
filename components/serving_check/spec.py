"""ComponentSpec of the serving check."""

from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter


class ServingCheckSpec(ComponentSpec):
    PARAMETERS = {
        "split": ExecutionParameter(type=str),  # where the real lists come from
        "batch_lists": ExecutionParameter(type=int),  # lists in the serving_default batch request
        "latency_list_sizes": ExecutionParameter(type=str),  # JSON list of document counts, e.g. [10, 100, 1000]
        "latency_repeats": ExecutionParameter(type=int),  # timed calls per signature and list size
        "timeout_s": ExecutionParameter(type=int),  # the check process is stopped (and fails) after this long
        "model_name": ExecutionParameter(type=str),  # model_spec.name of the warmup requests
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "schema": ChannelParameter(type=standard_artifacts.Schema),
        # The evaluator's verdict: an unblessed model is not checked (it will not be pushed).
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing, optional=True),
    }
    OUTPUTS = {
        # TFX's InfraValidator convention: `blessed` 1/0 and, when blessed, the model with
        # its warmup requests under <uri>/stamped_model (custom property has_model=1).
        "blessing": ChannelParameter(type=standard_artifacts.InfraBlessing),
    }
