"""Hands ``max_trials`` to ``tuner_fn`` through custom_config, then runs TFX's Tuner executor.

``max_trials`` is its own execution parameter (not a key of custom_config) so a
compiled pipeline can expose it as a runtime parameter: TFX serializes
custom_config to JSON at definition time, where a RuntimeParameter cannot live.
"""

from __future__ import annotations

from typing import Any

from tfx.components.tuner import executor as tuner_executor
from tfx.types import standard_component_specs
from tfx.utils import json_utils

from components.propensity_estimator.trainer import with_propensities
from components.ranking_tuner.spec import MAX_TRIALS_KEY


def with_max_trials(exec_properties: dict[str, Any]) -> dict[str, Any]:
    exec_properties = dict(exec_properties)
    key = standard_component_specs.CUSTOM_CONFIG_KEY
    custom_config = json_utils.loads(exec_properties.get(key) or "null") or {}
    custom_config[MAX_TRIALS_KEY] = int(exec_properties.pop(MAX_TRIALS_KEY))
    exec_properties[key] = json_utils.dumps(custom_config)
    return exec_properties


class Executor(tuner_executor.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        input_dict, exec_properties = with_propensities(input_dict, exec_properties)
        super().Do(input_dict, output_dict, with_max_trials(exec_properties))
