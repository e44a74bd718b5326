"""Builds the warmup requests, runs the check process, records the verdict and latencies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

import tensorflow as tf
from absl import logging
from google.protobuf.message import DecodeError
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components.ranking_evaluator.scoring import record_files
from components.serving_check import requests as requests_lib
from modules.features import feature_set_from_schema
from modules.memory import release_memory
from modules.serving.loading import op_packages

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe.py")
RESULT_FILE = "serving_check.json"
# TFX's InfraValidator conventions (tfx/components/infra_validator/executor.py), which
# TFX's Pusher and this project's RegistryPusher read.
BLESSED_KEY = "blessed"
MODEL_FLAG_KEY = "has_model"
BLESSED_FILE = "INFRA_BLESSED"
NOT_BLESSED_FILE = "INFRA_NOT_BLESSED"
REASON_KEY = "blessing_message"


def latency_property(signature: str, documents: int, quantile: str) -> str:
    """Custom property name of one latency figure, e.g. ``latency_ms_serving_default_100docs_p99``."""
    return f"latency_ms_{signature}_{documents}docs_{quantile}"


def build_requests(
    model_dir: str, records: list[bytes], context_names: set[str], model_name: str, batch_lists: int, sizes: list[int]
) -> tuple[list, list[dict[str, Any]], list[str]]:
    """(PredictionLogs, their expectations, failures found before sending anything)."""
    failures = []
    try:
        inputs = requests_lib.signature_inputs(model_dir)
    except Exception as error:
        return [], [], [f"cannot read the SavedModel's signatures: {error}"]
    lists = [requests_lib.parse(record) for record in records]
    pairs = [requests_lib.elwc_request(model_name, records[:batch_lists], "batch")]
    tensor_inputs = inputs.get(requests_lib.TENSORS_SIGNATURE)
    if requests_lib.ELWC_SIGNATURE not in inputs:
        failures.append(f"the SavedModel has no '{requests_lib.ELWC_SIGNATURE}' signature (has {sorted(inputs)})")
    if tensor_inputs is None:
        failures.append(f"the SavedModel has no '{requests_lib.TENSORS_SIGNATURE}' signature (has {sorted(inputs)})")
    else:
        pairs.append(requests_lib.tensors_request(model_name, lists[0], tensor_inputs, context_names, "batch"))
    for size in sizes:
        merged = requests_lib.list_of_size(lists, size)
        pairs.append(requests_lib.elwc_request(model_name, [merged.SerializeToString(deterministic=True)], "latency"))
        if tensor_inputs is not None:
            pairs.append(requests_lib.tensors_request(model_name, merged, tensor_inputs, context_names, "latency"))
    logs = [log for log, _ in pairs]
    return logs, [expectation.__dict__ for _, expectation in pairs], failures


def _op_packages(model_dir: str) -> list[str]:
    """The op packages the SavedModel's graph needs; none if its graph cannot be read, so that the
    check process's own load gives the verdict ("does not load ..."), as for any other load failure."""
    try:
        return op_packages(model_dir)
    except (tf.errors.OpError, DecodeError):
        return []


def run_probe(model_dir: str, logs, expectations, repeats: int, timeout_s: int, scratch: str) -> dict[str, Any]:
    """Runs probe.py in a fresh, isolated interpreter (``-I``: no PYTHONPATH, no script dir on sys.path)."""
    warmup = os.path.join(scratch, "requests.tfrecord")
    io_utils.write_tfrecord_file(warmup, *logs)
    expectations_path = os.path.join(scratch, "expectations.json")
    result_path = os.path.join(scratch, "result.json")
    with open(expectations_path, "w") as handle:
        json.dump(expectations, handle)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The check process starts beside this one (TensorFlow alone is ~500 MB): memory that
    # earlier components freed but the allocator kept would otherwise count twice at the run's peak.
    release_memory("building the serving check's requests")
    packages = ",".join(_op_packages(model_dir))  # e.g. TF-DF for trees: the probe imports only these
    command = [sys.executable, "-I", PROBE, model_dir, warmup, expectations_path, result_path, str(repeats), packages]
    try:
        completed = subprocess.run(command, env=env, cwd=scratch, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"failures": [f"the check process did not finish within {timeout_s} s"]}
    if completed.returncode != 0 or not os.path.exists(result_path):
        tail = " | ".join(completed.stderr.strip().splitlines()[-3:])
        return {"failures": [f"the check process exited with {completed.returncode}: {tail}"]}
    with open(result_path) as handle:
        return json.load(handle)


def _mark(blessing, blessed: bool, reason: str) -> None:
    io_utils.write_string_file(os.path.join(blessing.uri, BLESSED_FILE if blessed else NOT_BLESSED_FILE), "")
    blessing.set_int_custom_property(BLESSED_KEY, int(blessed))
    blessing.set_string_custom_property(REASON_KEY, reason)


def _evaluator_verdict(input_dict) -> tuple[bool, str]:
    blessings = input_dict.get("model_blessing") or []
    if not blessings:
        return True, ""
    blessing = blessings[0]
    blessed = blessing.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1
    message = ""
    if blessing.has_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY):
        message = blessing.get_string_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY)
    return blessed, message


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        model = artifact_utils.get_single_instance(input_dict["model"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        model_dir = path_utils.serving_model_path(model.uri)
        blessing.set_int_custom_property("model_id", model.id)
        report: dict[str, Any] = {"model_artifact_id": model.id, "model_uri": model_dir}

        evaluator_blessed, evaluator_reason = _evaluator_verdict(input_dict)
        if not evaluator_blessed:
            reason = f"not checked: the evaluator did not bless the model ({evaluator_reason})"
            logging.warning("Serving check of model %s skipped: %s", model.id, reason)
            _mark(blessing, False, reason)
            report.update(blessed=False, reason=reason)
            io_utils.write_string_file(os.path.join(blessing.uri, RESULT_FILE), json.dumps(report, indent=2))
            return

        split = exec_properties.get("split") or "eval"
        batch_lists = int(exec_properties.get("batch_lists") or 8)
        sizes = [int(n) for n in json.loads(exec_properties.get("latency_list_sizes") or "[10, 100, 1000]")]
        repeats = int(exec_properties.get("latency_repeats") or 50)
        timeout_s = int(exec_properties.get("timeout_s") or 600)
        model_name = exec_properties.get("model_name") or "ranker"

        files = record_files(artifact_utils.get_split_uri([examples], split))
        records = requests_lib.read_records_until(files, lists=max(batch_lists, 1), documents=max(sizes, default=0))
        if not records:
            raise ValueError(f"split '{split}' of Examples {examples.uri} holds no lists to build requests from")
        schema_file = io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(input_dict["schema"]))
        feature_set = feature_set_from_schema(io_utils.parse_pbtxt_file(schema_file, schema_pb2.Schema()))
        context_names = {f.name for f in feature_set.context}

        logs, expectations, failures = build_requests(model_dir, records, context_names, model_name, batch_lists, sizes)
        with tempfile.TemporaryDirectory(prefix="serving-check-") as scratch:
            result = run_probe(model_dir, logs, expectations, repeats, timeout_s, scratch) if logs else {}
        failures = failures + list(result.get("failures", []))
        latency = result.get("latency_ms", {})
        for key, figures in latency.items():
            signature, documents = key.split("/")
            for quantile in ("p50", "p99"):
                blessing.set_float_custom_property(
                    latency_property(signature, int(documents), quantile), figures[quantile]
                )
        if "load_s" in result:
            blessing.set_float_custom_property("load_s", result["load_s"])
        blessed = not failures
        reason = (
            f"answered {result.get('answered', 0)} requests on both signatures with finite scores of the right shape"
            if blessed
            else "; ".join(failures)
        )
        report.update(
            blessed=blessed,
            reason=reason,
            requests=expectations,
            latency_ms=latency,
            load_s=result.get("load_s"),
            leaked_modules=result.get("leaked_modules"),
            op_packages=result.get("op_packages", []),  # imported for their ops (TF-DF for trees)
        )
        if blessed:
            # TF Serving replays assets.extra/tf_serving_warmup_requests when it loads the model;
            # this copy (not the Trainer's artifact, which stays as it was) is what gets pushed.
            stamped = path_utils.stamped_model_path(blessing.uri)
            io_utils.copy_dir(model_dir, stamped)
            io_utils.write_tfrecord_file(path_utils.warmup_file_path(stamped), *logs)
            blessing.set_int_custom_property(MODEL_FLAG_KEY, 1)
            report["stamped_model"] = stamped
            logging.info("Serving check passed for model %s: %s; latency (ms) %s", model.id, reason, latency)
        else:
            logging.warning("Serving check failed for model %s: %s", model.id, reason)
        _mark(blessing, blessed, reason)
        io_utils.write_string_file(os.path.join(blessing.uri, RESULT_FILE), json.dumps(report, indent=2))
