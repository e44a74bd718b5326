"""Registers the Trainer's serving SavedModel and records where it went."""

from __future__ import annotations

import json
import os

from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components.registry_pusher.registry import LocalRegistry
from modules.trainer import METRICS_FILE

BACKEND = "local"


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        model = artifact_utils.get_single_instance(input_dict["model"])
        pushed = artifact_utils.get_single_instance(output_dict["pushed_model"])
        metadata = {"model_artifact_id": model.id, "model_uri": model.uri}
        if input_dict.get("model_run"):
            metrics_path = os.path.join(artifact_utils.get_single_uri(input_dict["model_run"]), METRICS_FILE)
            if os.path.exists(metrics_path):
                metadata["metrics"] = json.loads(io_utils.read_string_file(metrics_path)).get("eval", {})

        registry = LocalRegistry(exec_properties["registry_root"])
        registered = registry.register(
            exec_properties["model_name"], path_utils.serving_model_path(model.uri), metadata
        )
        # The same custom properties as TFX's Pusher, plus the backend.
        pushed.set_int_custom_property("pushed", 1)
        pushed.set_string_custom_property("pushed_destination", registered.path)
        pushed.set_int_custom_property("pushed_version", registered.version)
        pushed.set_string_custom_property("registry_backend", BACKEND)
        pushed.set_string_custom_property("model_name", registered.model_name)
        io_utils.write_string_file(
            os.path.join(pushed.uri, "registration.json"),
            json.dumps(
                {
                    "version": registered.version,
                    "path": registered.path,
                    "newly_registered": registered.newly_registered,
                }
            ),
        )
