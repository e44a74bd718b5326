"""ElwcExampleGen inside LocalDagRunner: span/version resolution and caching through MLMD."""

from __future__ import annotations

import shutil

import pytest
from tfx import v1 as tfx
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import example_gen_pb2, range_config_pb2

from components.elwc_example_gen import ElwcExampleGen
from modules.features import DEFAULT_SCHEMA_PATH
from pipeline.report import latest_run_report

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
