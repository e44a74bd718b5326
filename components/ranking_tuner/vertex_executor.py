"""The ranking Tuner's executor for Vertex AI: trials run as a Vertex AI training job."""

from __future__ import annotations

from tfx.extensions.google_cloud_ai_platform.tuner import executor as vertex_tuner_executor

from components.propensity_estimator.trainer import with_propensities
from components.ranking_tuner.executor import with_max_trials


class Executor(vertex_tuner_executor.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        input_dict, exec_properties = with_propensities(input_dict, exec_properties)
        super().Do(input_dict, output_dict, with_max_trials(exec_properties))
