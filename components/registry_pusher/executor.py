"""Registers the Trainer's serving SavedModel if it was blessed, and records where it went."""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging
from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components.ranking_evaluator.executor import EVALUATION_FILE
from components.registry_pusher.backends import open_registry
from components.registry_pusher.names import check_name
from modules.training.config import METRICS_FILE

REGISTRATION_FILE = "registration.json"


def _blessing(input_dict) -> tuple[bool, str]:
    blessings = input_dict.get("model_blessing") or []
    if not blessings:
        return True, "no blessing input: pushed unconditionally"
    blessing = blessings[0]
    message = ""
    if blessing.has_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY):
        message = blessing.get_string_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY)
    blessed = blessing.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1
    return blessed, message or ("blessed" if blessed else "not blessed")


def _infra_blessing(input_dict, model_path: str) -> tuple[bool, str, str]:
    """(passed, reason, path to register): the serving check's stamped model (with warmup) if it has one."""
    infra = input_dict.get("infra_blessing") or []
    if not infra:
        return True, "", model_path
    blessing = infra[0]
    reason = ""
    if blessing.has_custom_property("blessing_message"):
        reason = blessing.get_string_custom_property("blessing_message")
    if blessing.get_int_custom_property("blessed") != 1:
        return False, reason or "serving check failed", model_path
    if blessing.get_int_custom_property("has_model") == 1:
        model_path = path_utils.stamped_model_path(blessing.uri)
    return True, reason, model_path


def _examples_lineage(input_dict) -> list[dict[str, Any]]:
    lineage = []
    for examples in input_dict.get("examples") or []:
        entry = {"artifact_id": examples.id, "uri": examples.uri}
        for key in ("span", "version"):
            if examples.has_property(key):
                entry[key] = int(getattr(examples, key))
            elif examples.has_custom_property(key):
                entry[key] = examples.get_int_custom_property(key)
        lineage.append(entry)
    return lineage


def _metrics(input_dict) -> dict[str, float]:
    if input_dict.get("model_evaluation"):
        path = os.path.join(artifact_utils.get_single_uri(input_dict["model_evaluation"]), EVALUATION_FILE)
        return json.loads(io_utils.read_string_file(path))["metrics"]
    if input_dict.get("model_run"):
        path = os.path.join(artifact_utils.get_single_uri(input_dict["model_run"]), METRICS_FILE)
        if os.path.exists(path):
            return json.loads(io_utils.read_string_file(path)).get("eval", {})
    return {}


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        model = artifact_utils.get_single_instance(input_dict["model"])
        pushed = artifact_utils.get_single_instance(output_dict["pushed_model"])
        backend = exec_properties.get("backend") or "local"
        model_name = check_name(exec_properties["model_name"], "model_name")
        pushed.set_string_custom_property("registry_backend", backend)
        pushed.set_string_custom_property("model_name", model_name)
        pushed.set_int_custom_property("model_artifact_id", model.id)

        blessed, reason = _blessing(input_dict)
        served, served_reason, model_path = _infra_blessing(input_dict, path_utils.serving_model_path(model.uri))
        if blessed and not served:
            blessed, reason = False, f"serving check failed: {served_reason}"
        if not blessed:
            logging.warning("Model %s is not registered: %s", model.id, reason)
            pushed.set_int_custom_property("pushed", 0)
            pushed.set_string_custom_property("pushed_reason", f"not blessed: {reason}")
            io_utils.write_string_file(
                os.path.join(pushed.uri, REGISTRATION_FILE),
                json.dumps({"pushed": False, "reason": f"not blessed: {reason}", "model_artifact_id": model.id}),
            )
            return

        context = self._context
        metadata = {
            "model_artifact_id": model.id,
            "model_uri": model.uri,
            "metrics": _metrics(input_dict),
            "examples": _examples_lineage(input_dict),
            "pipeline_run_id": getattr(context, "pipeline_run_id", None) if context else None,
        }
        for key in ("model_blessing", "infra_blessing", "model_evaluation", "model_run"):
            if input_dict.get(key):
                metadata[f"{key}_artifact_id"] = input_dict[key][0].id
        registry = open_registry(
            backend,
            exec_properties["registry_root"],
            exec_properties.get("mlflow_tracking_uri") or "",
            exec_properties.get("mlflow_experiment") or "",
        )
        registered = registry.register(model_name, model_path, metadata)
        if registered.newly_registered:
            logging.info(
                "Registered model %s as %s version %d at %s", model.id, model_name, registered.version, registered.path
            )
        else:
            logging.info(
                "Model %s has content identical to %s version %d: nothing copied, that version is served",
                model.id,
                model_name,
                registered.version,
            )
        # The same custom properties as TFX's Pusher, plus backend, name and version.
        pushed.set_int_custom_property("pushed", 1)
        pushed.set_string_custom_property("pushed_destination", registered.path)
        pushed.set_int_custom_property("pushed_version", registered.version)
        pushed.set_string_custom_property("pushed_reason", reason)
        pushed.set_int_custom_property("newly_registered", int(registered.newly_registered))
        if registered.fingerprint:
            pushed.set_string_custom_property("pushed_fingerprint", registered.fingerprint)
        io_utils.write_string_file(
            os.path.join(pushed.uri, REGISTRATION_FILE),
            json.dumps(
                {
                    "pushed": True,
                    "backend": backend,
                    "model_name": model_name,
                    "version": registered.version,
                    "path": registered.path,
                    "newly_registered": registered.newly_registered,
                    "fingerprint": registered.fingerprint,
                    "reason": reason,
                    "model_artifact_id": model.id,
                }
            ),
        )
