"""ElwcExampleGen inside LocalDagRunner: span/version resolution and caching through MLMD."""

from __future__ import annotations

import shutil

import pytest
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import example_gen_pb2, range_config_pb2

from components.elwc_example_gen import ElwcExampleGen
from modules.features import DEFAULT_SCHEMA_PATH
from pipeline.report import latest_run_report, open_store
from tests.helpers import read_lists, run_example_gen

PATTERN = "span-{SPAN}/v{VERSION}/*.csv"


def _write(root, span, version, rows):
    folder = root / f"span-{span}" / f"v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["query_id,doc_id,price,label"] + [f"q{i % 5},d{i},{i}.5,{i % 3}" for i in range(rows)]
    (folder / "logs.csv").write_text("\n".join(lines) + "\n")


def _run(tmp_path, span=None):
    schema_gen = tfx.components.ImportSchemaGen(schema_file=str(DEFAULT_SCHEMA_PATH))
    range_config = None
    if span is not None:
        range_config = range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)
        )
    example_gen = ElwcExampleGen(
        input_base=str(tmp_path / "data"),
        schema=schema_gen.outputs["schema"],
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern=PATTERN)]),
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=1)]
            )
        ),
        range_config=range_config,
    )
    metadata = str(tmp_path / "md.sqlite")
    tfx.orchestration.LocalDagRunner().run(
        tfx_pipeline.Pipeline(
            pipeline_name="example_gen_test",
            pipeline_root=str(tmp_path / "root"),
            components=[schema_gen, example_gen],
            enable_cache=True,
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata),
        )
    )
    report = latest_run_report(metadata)
    examples = report.artifact("Examples").custom_properties
    return report.executions["ElwcExampleGen"], examples["span"].int_value, examples["version"].int_value


def test_span_version_resolution_and_caching(tmp_path):
    data = tmp_path / "data"
    _write(data, 1, 1, rows=20)
    _write(data, 2, 1, rows=20)
    assert _run(tmp_path) == ("COMPLETE", 2, 1)  # latest span
    assert _run(tmp_path) == ("CACHED", 2, 1)  # unchanged input: a cache hit

    _write(data, 2, 1, rows=21)  # a changed file of the same span and version
    assert _run(tmp_path) == ("COMPLETE", 2, 1)

    _write(data, 2, 2, rows=20)  # a new version of the latest span
    assert _run(tmp_path) == ("COMPLETE", 2, 2)

    assert _run(tmp_path, span=1) == ("COMPLETE", 1, 1)  # exactly the requested span
    with pytest.raises(Exception, match="requested span 7"):
        _run(tmp_path, span=7)  # absent: an error, never a fall-back to other data

    shutil.rmtree(data / "span-2" / "v2")
    assert _run(tmp_path) == ("CACHED", 2, 1)  # back to the earlier, unchanged input


def test_a_failed_run_publishes_no_examples(tmp_path):
    """Too many bad rows: the run fails, MLMD records a failed execution and no Examples artifact."""
    data = tmp_path / "data"
    _write(data, 1, 1, rows=10)
    (data / "span-1" / "v1" / "logs.csv").write_text("query_id,doc_id,price,label\nq1,d1,abc,1\nq1,d2,1.0,9\n")
    with pytest.raises(Exception, match="examples.max_bad_row_fraction"):
        _run(tmp_path)
    store = open_store(str(tmp_path / "md.sqlite"))
    assert store.get_artifacts_by_type("Examples") == []
    states = {
        e.last_known_state for e in store.get_executions_by_type("components.elwc_example_gen.component.ElwcExampleGen")
    }
    assert states == {metadata_store_pb2.Execution.FAILED}


def test_input_defined_splits_by_file_pattern(tmp_path):
    (tmp_path / "data" / "span-1").mkdir(parents=True)
    for split, queries in (("train", "abc"), ("eval", "xy")):
        rows = ["query_id,doc_id,price,label"] + [f"{q},d{i},1.5,{i % 3}" for q in queries for i in range(3)]
        (tmp_path / "data" / "span-1" / f"{split}.csv").write_text("\n".join(rows) + "\n")
    examples = run_example_gen(tmp_path, {"train": "span-1/train.csv", "eval": "span-1/eval.csv"}, hash_split=False)
    query_ids = {
        split: sorted(
            e.context.features.feature["query_id"].bytes_list.value[0] for e in read_lists(examples.uri, split)
        )
        for split in ("train", "eval")
    }
    assert query_ids == {"train": [b"a", b"b", b"c"], "eval": [b"x", b"y"]}
