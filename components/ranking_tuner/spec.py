"""ComponentSpec of the ranking Tuner: TFX's TunerSpec plus the number of trials."""

from tfx.types import standard_component_specs
from tfx.types.component_spec import ExecutionParameter

from components.propensity_estimator.spec import PROPENSITIES_KEY
from components.propensity_estimator.trainer import PROPENSITIES_INPUT

MAX_TRIALS_KEY = "max_trials"


class RankingTunerSpec(standard_component_specs.TunerSpec):
    PARAMETERS = {
        **standard_component_specs.TunerSpec.PARAMETERS,
        MAX_TRIALS_KEY: ExecutionParameter(type=int),
    }
    # training.position_bias ipw: trials train with the same weights as the Trainer.
    INPUTS = {**standard_component_specs.TunerSpec.INPUTS, PROPENSITIES_KEY: PROPENSITIES_INPUT}
