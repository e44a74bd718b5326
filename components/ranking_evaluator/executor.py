"""Evaluates the candidate and the baseline model on one split and decides the blessing."""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components.ranking_evaluator import scoring
from components.ranking_evaluator.gate import Gate, judge
from modules.features import feature_set_from_schema

EVALUATION_FILE = "evaluation.json"


def _label_key(schema_artifact) -> str:
    schema = io_utils.parse_pbtxt_file(io_utils.get_only_uri_in_dir(schema_artifact.uri), schema_pb2.Schema())
    return feature_set_from_schema(schema).label.name


def _evaluate(model_uri: str, files: list[str], label_key: str, batch_size: int) -> dict[str, Any]:
    scorer = scoring.ServingScorer(path_utils.serving_model_path(model_uri))
    accumulator = scoring.evaluate(scorer, scoring.read_batches(files, batch_size), label_key)
    return {
        "metrics": accumulator.result(),
        "lists": accumulator.lists,
        "lists_without_relevant": accumulator.lists_without_relevant,
        "documents": accumulator.documents,
        "documents_without_label": accumulator.missing_labels,
    }


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        model = artifact_utils.get_single_instance(input_dict["model"])
        baselines = input_dict.get("baseline_model") or []
        baseline = baselines[0] if baselines else None
        evaluation = artifact_utils.get_single_instance(output_dict["evaluation"])
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        gate = Gate(
            metric=exec_properties["metric"],
            min_value=float(exec_properties["min_value"]),
            max_regression=float(exec_properties["max_regression"]),
        )
        split = exec_properties.get("split") or "eval"
        batch_size = int(exec_properties.get("batch_size") or 64)

        files = scoring.record_files(artifact_utils.get_split_uri([examples], split))
        label_key = _label_key(artifact_utils.get_single_instance(input_dict["schema"]))
        candidate = _evaluate(model.uri, files, label_key, batch_size)
        logging.info("Candidate model %s on split '%s': %s", model.id, split, candidate["metrics"])
        baseline_result = None
        if baseline is not None:
            baseline_result = _evaluate(baseline.uri, files, label_key, batch_size)
            logging.info("Baseline model %s on split '%s': %s", baseline.id, split, baseline_result["metrics"])
        judgement = judge(candidate["metrics"], baseline_result and baseline_result["metrics"], gate)
        logging.info("Blessed: %s (%s)", judgement.blessed, judgement.reason)

        report = {
            "split": split,
            "model_artifact_id": model.id,
            "model_uri": model.uri,
            **candidate,
            "baseline": None
            if baseline is None
            else {"model_artifact_id": baseline.id, "model_uri": baseline.uri, **baseline_result},
            "gate": {"metric": gate.metric, "min_value": gate.min_value, "max_regression": gate.max_regression},
            "blessed": judgement.blessed,
            "reason": judgement.reason,
        }
        io_utils.write_string_file(os.path.join(evaluation.uri, EVALUATION_FILE), json.dumps(report, indent=2))
        for name, value in candidate["metrics"].items():
            evaluation.set_float_custom_property(name, value)
            if baseline_result is not None:
                evaluation.set_float_custom_property(f"baseline_{name}", baseline_result["metrics"][name])
        evaluation.set_int_custom_property("lists", candidate["lists"])
        evaluation.set_int_custom_property("model_id", model.id)
        evaluation.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY, int(judgement.blessed))
        evaluation.set_string_custom_property(constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY, judgement.reason)

        # The same properties and marker file as TFX's Evaluator, so TFX's
        # LatestBlessedModelStrategy and Pusher conventions apply unchanged.
        blessed_value = constants.BLESSED_VALUE if judgement.blessed else constants.NOT_BLESSED_VALUE
        marker = constants.BLESSED_FILE_NAME if judgement.blessed else constants.NOT_BLESSED_FILE_NAME
        io_utils.write_string_file(os.path.join(blessing.uri, marker), "")
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY, blessed_value)
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY, judgement.reason)
        if baseline is not None:
            blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.uri)
            blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline.id)
