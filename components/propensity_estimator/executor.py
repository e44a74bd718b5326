"""Reads (position, clicked, features) of every document of a split and fits the propensities.

The ELWC records are decoded by the project's own decoder (``modules.transform.decoder``,
as in training); a document is a click when its label is > 0; features are the
numeric context and document features of the schema. The fit is
``modules.propensity.estimate`` (regression-EM, plain numpy).
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.propensity_estimator.spec import PROPENSITIES_KEY
from components.ranking_evaluator.scoring import record_files
from modules.features import CONTEXT_BLOCK, DOCUMENT_BLOCK, FeatureSet, Role, feature_set_from_schema
from modules.propensity import PROPENSITIES_CSV, PROPENSITIES_FILE, Propensities, estimate
from modules.transform.decoder import decode_elwc

BATCH_LISTS = 256


def read_impressions(files: list[str], feature_set: FeatureSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions, clicks, features) with one row per document of the ELWC files (position 0: missing)."""
    position = feature_set.single(Role.POSITION)
    if position is None:
        raise ValueError("propensity estimation needs a 'role:position' feature in the schema")
    label = feature_set.label.name
    compression = "GZIP" if all(f.endswith(".gz") for f in files) else ""
    dataset = tf.data.TFRecordDataset(files, compression_type=compression).batch(BATCH_LISTS)

    @tf.function
    def decode(records):
        decoded = decode_elwc(records, feature_set)
        first = {
            name: decoded[name].values.to_tensor(default_value=d, shape=[None, 1])[:, 0]
            for name, d in ((position.name, tf.constant(0, tf.int64)), (label, tf.cast(-1, decoded[label].dtype)))
        }
        parts = []
        if CONTEXT_BLOCK in decoded:  # context features repeated for each document
            parts.append(tf.repeat(decoded[CONTEXT_BLOCK], decoded[position.name].row_lengths(), axis=0))
        if DOCUMENT_BLOCK in decoded:
            parts.append(decoded[DOCUMENT_BLOCK].values)
        return first[position.name], first[label], tf.concat(parts, axis=1)

    positions, labels, features = [], [], []
    for records in dataset:
        p, y, x = decode(records)
        positions.append(p.numpy())
        labels.append(y.numpy())
        features.append(x.numpy())
    if not positions:
        raise ValueError(f"no lists in {files}")
    labels = np.concatenate(labels).astype(np.float64)
    return np.concatenate(positions), labels > 0, np.concatenate(features)


def estimate_from_files(files: list[str], feature_set: FeatureSet, iterations: int = 400) -> Propensities:
    positions, clicks, features = read_impressions(files, feature_set)
    return estimate(positions, clicks, features, iterations=iterations)


def write_propensities(propensities: Propensities, uri: str) -> None:
    io_utils.write_string_file(os.path.join(uri, PROPENSITIES_FILE), propensities.to_json())
    io_utils.write_string_file(os.path.join(uri, PROPENSITIES_CSV), propensities.to_csv())


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        split = exec_properties.get("split") or "train"
        iterations = int(exec_properties.get("iterations") or 400)
        schema_file = io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(input_dict["schema"]))
        feature_set = feature_set_from_schema(io_utils.parse_pbtxt_file(schema_file, schema_pb2.Schema()))
        files = [
            f
            for examples in input_dict["examples"]
            for f in record_files(artifact_utils.get_split_uri([examples], split))
        ]
        propensities = estimate_from_files(files, feature_set, iterations)
        output = artifact_utils.get_single_instance(output_dict[PROPENSITIES_KEY])
        write_propensities(propensities, output.uri)
        diagnostics = propensities.diagnostics
        output.set_string_custom_property("method", propensities.method)
        output.set_string_custom_property("split", split)
        output.set_string_custom_property("propensity", json.dumps([round(v, 6) for v in propensities.relative]))
        for key in ("impressions", "clicks", "positions_estimated", "iterations"):
            output.set_int_custom_property(key, int(diagnostics[key]))
        output.set_int_custom_property("converged", int(diagnostics["converged"]))
        logging.info(
            "Propensities from %d impressions (%d clicks), positions 1-%d: %s",
            diagnostics["impressions"],
            diagnostics["clicks"],
            diagnostics["positions_estimated"],
            ", ".join(f"{v:.3f}" for v in propensities.relative[:10]),
        )
