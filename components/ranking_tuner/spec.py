"""ComponentSpec of the ranking Tuner: TFX's TunerSpec plus the number of trials."""

from tfx.types import standard_component_specs
from tfx.types.component_spec import ExecutionParameter

MAX_TRIALS_KEY = "max_trials"


class RankingTunerSpec(standard_component_specs.TunerSpec):
    PARAMETERS = {
        **standard_component_specs.TunerSpec.PARAMETERS,
        MAX_TRIALS_KEY: ExecutionParameter(type=int),
    }
