"""Nested list exports (examples.documents_field): JSON Lines and Parquet rows holding a list each."""

from __future__ import annotations

import json
import types

import numpy as np
import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq
import pytest

from components.elwc_example_gen import nested
from components.elwc_example_gen.formats import FormatOptions
from modules.features import load_feature_set
from tests.helpers import dead_letter, example_gen_summary, read_lists, run_example_gen

# BigQuery's ARRAY_AGG(STRUCT(...)) export shape; q2 lacks query_length and has an extra top-level
# field, b has an extra document field, c has no price.
ROWS = [
    {
        "query_id": "q1",
        "query_length": 3,
        "docs": [
            {"doc_id": "a", "position": 1, "price": 1.5, "label": 2},
            {"doc_id": "b", "position": 2, "price": 2.5, "label": 0, "colour": "red"},
        ],
    },
    {"query_id": "q2", "session": "s9", "docs": [{"doc_id": "c", "position": 1, "label": 1}]},
]
OPTIONS = FormatOptions(documents_field="docs")


def _lists(examples) -> dict[str, list[dict]]:
    out = {}
    for split in ("train", "eval"):
        for elwc in read_lists(examples.uri, split):
            context = {k: _value(v) for k, v in elwc.context.features.feature.items()}
            docs = [{k: _value(v) for k, v in d.features.feature.items()} for d in elwc.examples]
            query = context.pop("query_id")
            out[query.decode()] = [{**context, **doc} for doc in docs]
    return out


def _value(feature):
    kind = feature.WhichOneof("kind")
    (value,) = getattr(feature, kind).value
    return value


EXPECTED = {
    "q1": [
        {"query_length": 3, "doc_id": b"a", "position": 1, "price": 1.5, "label": 2},
        {"query_length": 3, "doc_id": b"b", "position": 2, "price": 2.5, "label": 0},
    ],
    "q2": [{"doc_id": b"c", "position": 1, "label": 1}],  # missing fields stay missing (schema defaults later)
}


def _write_jsonl(path, rows, extra_lines=()):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(row) for row in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")


def test_jsonl_lists_become_elwc_with_missing_fields_absent_and_extra_fields_counted_once(tmp_path):
    _write_jsonl(tmp_path / "data" / "lists.jsonl", ROWS)
    examples = run_example_gen(tmp_path, {"all": "*.jsonl"}, options=OPTIONS, max_bad=0.0)
    assert _lists(examples) == EXPECTED
    summary = example_gen_summary(examples)
    assert summary["ignored_fields"] == {"docs.colour": 1, "session": 1}  # once per file, not per row
    assert summary["rows_read"] == 3 and summary["bad_rows"] == 0


def test_parquet_lists_read_as_list_of_struct_columns(tmp_path):
    (tmp_path / "data").mkdir()
    # What BigQuery exports: a list<struct> column (the union of every row's fields).
    table = pj.read_json(pa.BufferReader("\n".join(json.dumps(row) for row in ROWS).encode()))
    assert pa.types.is_struct(table.schema.field("docs").type.value_type)
    pq.write_table(table, tmp_path / "data" / "lists.parquet")
    examples = run_example_gen(tmp_path, {"all": "*.parquet"}, options=OPTIONS, max_bad=0.0)
    assert _lists(examples) == EXPECTED
    assert example_gen_summary(examples)["ignored_fields"] == {"docs.colour": 1, "session": 1}


@pytest.mark.parametrize(
    "bad_line, detail",
    [
        ('{"query_id": "q3", "docs": "not a list"}', "'docs' is not an array of objects"),
        ('{"query_id": "q3"}', "'docs' is null or absent"),
        ('{"query_id": "q3", "docs": []}', "'docs' is an empty array"),
        ('{"query_id": "q3", "docs": [1, 2]}', "'docs' is not an array of objects"),
    ],
)
def test_a_row_without_a_documents_list_goes_to_the_dead_letter_with_file_and_line(tmp_path, bad_line, detail):
    path = tmp_path / "data" / "lists.jsonl"
    _write_jsonl(path, ROWS[:1], extra_lines=["", bad_line, json.dumps(ROWS[1])])
    examples = run_example_gen(tmp_path, {"all": "*.jsonl"}, options=OPTIONS)
    assert _lists(examples) == EXPECTED
    (entry,) = dead_letter(examples)
    assert (entry["reason"], entry["source"], entry["line"]) == ("bad_documents_field", str(path), 3)
    assert detail in entry["detail"]


def test_a_bad_document_value_names_the_line_of_its_list(tmp_path):
    rows = [ROWS[0], {"query_id": "q2", "docs": [{"doc_id": "c", "label": 1, "price": "cheap"}]}]
    _write_jsonl(tmp_path / "data" / "lists.jsonl", rows)
    examples = run_example_gen(tmp_path, {"all": "*.jsonl"}, options=OPTIONS)
    assert set(_lists(examples)) == {"q1"}
    (entry,) = dead_letter(examples)
    assert (entry["reason"], entry["line"]) == ("bad_value", 2)
    assert "column 'price'" in entry["detail"]


def test_flattening_is_column_wise_and_keeps_parent_lines():
    table = pa.Table.from_pylist(ROWS)
    raw = nested.flatten(table, np.array([5, 9]), [], "f.parquet", OPTIONS, load_feature_set())
    assert raw.num_rows == 3
    assert raw.lines.tolist() == [5, 5, 9]
    assert raw.columns["query_id"].to_pylist() == ["q1", "q1", "q2"]
    assert raw.columns["query_length"].to_pylist() == [3, 3, None]
    assert raw.columns["price"].to_pylist() == [1.5, 2.5, None]
    assert "user_tenure_days" not in raw.columns  # absent from both levels: missing


def test_documents_field_needs_a_nested_format(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "flat.csv").write_text("query_id,doc_id,label\nq1,a,1\n")
    with pytest.raises(ValueError, match=r"flat.csv: examples.documents_field 'docs' needs JSON Lines or Parquet"):
        run_example_gen(tmp_path, {"all": "*.csv"}, options=OPTIONS)


def test_component_run_on_nested_parquet_lists(tmp_path):
    """ElwcExampleGen in LocalDagRunner (driver, Beam executor, MLMD) on a nested Parquet export."""
    from tfx import v1 as tfx
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.proto import example_gen_pb2

    from components.elwc_example_gen import ElwcExampleGen
    from modules.features import DEFAULT_SCHEMA_PATH
    from pipeline.report import latest_run_report

    data = tmp_path / "data" / "span-4"
    data.mkdir(parents=True)
    table = pj.read_json(pa.BufferReader("\n".join(json.dumps(row) for row in ROWS).encode()))
    pq.write_table(table, data / "part-0.parquet")
    schema_gen = tfx.components.ImportSchemaGen(schema_file=str(DEFAULT_SCHEMA_PATH))
    example_gen = ElwcExampleGen(
        input_base=str(tmp_path / "data"),
        schema=schema_gen.outputs["schema"],
        input_config=example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name="all", pattern="span-{SPAN}/*.parquet")]
        ),
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=1),
                    example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
                ]
            )
        ),
        format_options=OPTIONS,
    )
    metadata = str(tmp_path / "md.sqlite")
    tfx.orchestration.LocalDagRunner().run(
        tfx_pipeline.Pipeline(
            pipeline_name="nested_test",
            pipeline_root=str(tmp_path / "root"),
            components=[schema_gen, example_gen],
            enable_cache=False,
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata),
        )
    )
    report = latest_run_report(metadata)
    assert report.executions["ElwcExampleGen"] == "COMPLETE"
    artifact = report.artifact("Examples")
    assert artifact.custom_properties["span"].int_value == 4
    assert json.loads(artifact.custom_properties["ignored_fields"].string_value) == {"docs.colour": 1, "session": 1}
    assert _lists(types.SimpleNamespace(uri=artifact.uri)) == EXPECTED


def test_a_chunk_of_a_file_keeps_file_lines_and_rows():
    """Chunks (a later part of a file, or a Parquet row batch as a table) number lines from first_line."""
    text = ("\n".join(json.dumps(row) for row in ROWS) + "\n\n" + '{"query_id": "q3", "docs": 5}\n').encode()
    raw = nested.read_lists(text, "f.jsonl", "jsonl", OPTIONS, load_feature_set(), first_line=101)
    assert raw.lines.tolist() == [101, 101, 102]
    assert [(e["reason"], e["line"]) for e in raw.dead_letter] == [("bad_documents_field", 104)]
    table = pj.read_json(pa.BufferReader("\n".join(json.dumps(row) for row in ROWS).encode()))
    raw = nested.read_lists(table, "f.parquet", "parquet", OPTIONS, load_feature_set(), first_line=7)
    assert raw.lines.tolist() == [7, 7, 8]
