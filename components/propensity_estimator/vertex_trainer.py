"""The Vertex AI Trainer's executor with the propensities input (imported only when compiling for Vertex)."""

from __future__ import annotations

from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor

from components.propensity_estimator.trainer import split_propensities


class Executor(vertex_executor.GenericExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        super().Do(*split_propensities(input_dict, output_dict, exec_properties))
