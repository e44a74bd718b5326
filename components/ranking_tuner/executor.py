"""Hands ``max_trials`` to ``tuner_fn`` through custom_config, then runs TFX's Tuner search.

After TFX's own outputs (``best_hyperparameters.txt``, ``tuner_results.json``), the
trial selection (``modules.training.selection``: which trial, and why) is written
beside the results as ``selection.json`` and recorded on the TunerResults artifact
(``selection``, ``selected_trial``), so the run line and the report can say it.

``max_trials`` is its own execution parameter (not a key of custom_config) so a
compiled pipeline can expose it as a runtime parameter: TFX serializes
custom_config to JSON at definition time, where a RuntimeParameter cannot live.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tfx.components.tuner import executor as tuner_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, json_utils

from components.propensity_estimator.trainer import with_propensities
from components.ranking_tuner.spec import MAX_TRIALS_KEY
from modules.memory import release_memory


def with_max_trials(exec_properties: dict[str, Any]) -> dict[str, Any]:
    exec_properties = dict(exec_properties)
    key = standard_component_specs.CUSTOM_CONFIG_KEY
    custom_config = json_utils.loads(exec_properties.get(key) or "null") or {}
    custom_config[MAX_TRIALS_KEY] = int(exec_properties.pop(MAX_TRIALS_KEY))
    exec_properties[key] = json_utils.dumps(custom_config)
    return exec_properties


SELECTION_FILE = "selection.json"


def write_selection(tuner, output_dict) -> None:
    """The selection of a tuner that made one (``modules.training.tuner.RankingSearch``)."""
    selection = getattr(tuner, "selection", None)
    if selection is None:
        return
    results = artifact_utils.get_single_instance(output_dict[standard_component_specs.TUNER_RESULTS_KEY])
    io_utils.write_string_file(os.path.join(results.uri, SELECTION_FILE), json.dumps(selection.to_json(), indent=2))
    results.set_string_custom_property("selection", selection.summary)
    results.set_string_custom_property("selected_trial", selection.trial_id)


class Executor(tuner_executor.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        input_dict, exec_properties = with_propensities(input_dict, exec_properties)
        exec_properties = with_max_trials(exec_properties)
        if tuner_executor.get_tune_args(exec_properties):
            raise ValueError("TuneArgs is not supported by this Tuner's Executor.")
        tuner = tuner_executor.search(input_dict, exec_properties, self._get_tmp_dir())
        tuner_executor.write_best_hyperparameters(tuner, output_dict)  # selects (RankingSearch)
        write_selection(tuner, output_dict)
        del tuner  # holds the last trial's model and the datasets
        release_memory("the Tuner's search", keras_session=True)
