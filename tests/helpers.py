"""Helpers shared by the tests: running the ExampleGen executor, reading what it wrote."""

from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path

import tensorflow as tf
from tensorflow_serving.apis import input_pb2
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.elwc_example_gen import executor as executor_lib
from components.elwc_example_gen.formats import FormatOptions
from modules.features import DEFAULT_SCHEMA_PATH

FIXTURES = Path(__file__).resolve().parent / "data" / "tfr_examples"


def schema_artifact(tmp_path, schema_path=DEFAULT_SCHEMA_PATH) -> standard_artifacts.Schema:
    schema = standard_artifacts.Schema()
    schema.uri = str(tmp_path / "schema")
    os.makedirs(schema.uri, exist_ok=True)
    shutil.copy(schema_path, os.path.join(schema.uri, "schema.pbtxt"))
    return schema


def run_example_gen(
    tmp_path, splits, *, hash_split=True, max_list_size=0, options=None, max_bad=1.0, schema=None
) -> standard_artifacts.Examples:
    """Runs ElwcExampleGen's executor on ``tmp_path/data`` (``splits``: name -> pattern)."""
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out" / "examples" / "7")
    output = example_gen_pb2.Output()
    if hash_split:
        output.split_config.splits.add(name="train", hash_buckets=3)
        output.split_config.splits.add(name="eval", hash_buckets=1)
    exec_properties = {
        "input_base": str(tmp_path / "data"),
        "input_config": proto_utils.proto_to_json(
            example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name=n, pattern=p) for n, p in splits.items()])
        ),
        "output_config": proto_utils.proto_to_json(output),
        "output_data_format": example_gen_pb2.FORMAT_PROTO,
        "output_file_format": example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        "max_list_size": max_list_size,
        "format_options": (options or FormatOptions()).to_json(),
        "max_bad_row_fraction": max_bad,
    }
    schema_in = schema_artifact(tmp_path, schema or DEFAULT_SCHEMA_PATH)
    executor_lib.Executor().Do({"schema": [schema_in]}, {"examples": [examples]}, exec_properties)
    return examples


def read_records(pattern: str) -> list[bytes]:
    """Serialized records of the GZIP TFRecord files matching ``pattern``."""
    files = sorted(glob.glob(pattern))
    assert files, f"no files match {pattern}"
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def read_lists(examples_uri: str, split: str) -> list[input_pb2.ExampleListWithContext]:
    records = read_records(os.path.join(examples_uri, f"Split-{split}", "*.gz"))
    return [input_pb2.ExampleListWithContext.FromString(r) for r in records]


def tiny_config(home, **overrides):
    """The default config with every path under ``home`` and a tiny, fast sample run."""
    from pipeline.config import apply_overrides, load_config

    base = {
        "data_root": str(home / "data"),
        "pipeline_root": str(home / "pipeline"),
        "metadata_path": str(home / "metadata.sqlite"),
        "registry_root": str(home / "registry"),
        "sample_data.spans": 2,
        "sample_data.queries": 150,
        "training.train_steps": 150,
        "training.batch_size": 16,
        "tuner.max_trials": 2,
        "tuner.train_steps": 60,
        "training.ensemble": 2,
    }
    return apply_overrides(load_config(), {**base, **overrides})


def example_gen_summary(examples) -> dict:
    """ElwcExampleGen's ``summary.json`` of an Examples artifact."""
    with open(os.path.join(examples.uri, "summary.json")) as handle:
        return json.load(handle)


def dead_letter(examples) -> list[dict]:
    """Every dead-letter entry of an Examples artifact, by source file and line."""
    entries = []
    for path in glob.glob(os.path.join(examples.uri, "dead_letter", "*.jsonl")):
        with open(path) as handle:
            entries += [json.loads(line) for line in handle if line.strip()]
    return sorted(entries, key=lambda e: (str(e.get("source")), e.get("line") or 0))
