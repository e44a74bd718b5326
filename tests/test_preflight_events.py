"""Preflight of examples.events and examples.documents_field: one-line errors naming the key, warnings."""

from __future__ import annotations

import json

import pytest

from modules.features import DEFAULT_SCHEMA_PATH
from pipeline.config import ConfigError
from pipeline.pipeline import _example_gen
from pipeline.preflight import PreflightError, preflight
from tests.helpers import tiny_config

EVENTS = {
    "input_pattern": "span-{SPAN}/events/*.csv",
    "event_column": "event",
    "timestamp_column": "timestamp",
    "labels": {"purchase": 2, "add_to_cart": 1, "click": 1},
}


def _logs(root, events_text="request_id,item_id,event,timestamp\nr1,a,click,2024-05-01T10:00:00Z\n"):
    for folder, text in (
        ("impressions", "request_id,item_id,position,price\nr1,a,1,2.0\nr1,b,2,3.0\n"),
        ("events", events_text),
    ):
        (root / "data" / "span-1" / folder).mkdir(parents=True, exist_ok=True)
        (root / "data" / "span-1" / folder / "part-00000.csv").write_text(text)


def _config(home, events=None, **overrides):
    return tiny_config(
        home,
        **{
            "examples.input_pattern": "span-{SPAN}/impressions/*.csv",
            "examples.columns": {"query_id": "request_id", "doc_id": "item_id"},
            "examples.events": {**EVENTS, **(events or {})},
            **overrides,
        },
    )


def test_impression_and_event_logs_pass_without_a_label_column(tmp_path):
    _logs(tmp_path)
    report = preflight(_config(tmp_path), str(DEFAULT_SCHEMA_PATH))
    assert report.span == 1
    assert not [w for w in report.warnings if "event types" in w]


def test_event_types_the_labels_do_not_map_are_warned_about_by_name(tmp_path):
    _logs(tmp_path, "request_id,item_id,event,timestamp\nr1,a,click,\nr1,a,view,\nr1,b,hover,\nr1,b,view,\n")
    report = preflight(_config(tmp_path), str(DEFAULT_SCHEMA_PATH))
    (warning,) = [w for w in report.warnings if "event types" in w]
    assert "'examples.events.labels'" in warning and "hover (1), view (2)" in warning


@pytest.mark.parametrize(
    "events, message",
    [
        ({"labels": {"purchase": 7}}, r"'examples.events.labels.purchase' = 7 is outside the domain \[0.0, 4.0\]"),
        (
            {"event_column": "action"},
            r"config 'examples.events.event_column': the first 1 rows have no column 'action'",
        ),
        ({"timestamp_column": "ts"}, r"'examples.events.timestamp_column': .* no column 'ts'"),
        ({"input_pattern": "span-{SPAN}/clicks/*.csv"}, r"'examples.events.input_pattern' .* no events files match"),
    ],
)
def test_events_config_mistakes_are_one_line_errors_naming_the_key(tmp_path, events, message):
    _logs(tmp_path)
    with pytest.raises(PreflightError, match=message) as error:
        preflight(_config(tmp_path, events), str(DEFAULT_SCHEMA_PATH))
    assert "\n" not in str(error.value)


def test_events_need_the_doc_id_in_the_schema(tmp_path):
    _logs(tmp_path)
    schema = tmp_path / "schema.pbtxt"
    doc_id = 'feature {\n  name: "doc_id"\n  type: BYTES\n  annotation { tag: "role:doc_id" }\n}\n'
    text = DEFAULT_SCHEMA_PATH.read_text()
    assert doc_id in text
    text = text.replace(doc_id, "")
    schema.write_text(text)
    with pytest.raises(PreflightError, match=r"config 'examples.events': the schema .* has no role:doc_id feature"):
        preflight(_config(tmp_path, **{"examples.columns": {"query_id": "request_id"}}), str(schema))


def test_request_and_item_columns_must_be_in_the_events(tmp_path):
    _logs(tmp_path, "request,item_id,event,timestamp\nr1,a,click,\n")
    with pytest.raises(PreflightError, match=r"'examples.columns.query_id': .* no column 'request_id'"):
        preflight(_config(tmp_path), str(DEFAULT_SCHEMA_PATH))


def test_flat_outcome_columns_must_be_in_the_impressions(tmp_path):
    (tmp_path / "data" / "span-1").mkdir(parents=True)
    (tmp_path / "data" / "span-1" / "s.csv").write_text("query_id,doc_id,position,clicked,price\nm1,a,1,1,2.0\n")
    flat = {"input_pattern": None, "labels": {"bought": 2, "clicked": 1}}
    config = _config(tmp_path, flat, **{"examples.input_pattern": "span-{SPAN}/*.csv", "examples.columns": {}})
    with pytest.raises(
        PreflightError, match=r"s.csv: config 'examples.events.labels' names the outcome column 'bought'"
    ):
        preflight(config, str(DEFAULT_SCHEMA_PATH))


def test_events_keys_are_checked_when_the_config_loads(tmp_path):
    with pytest.raises(ConfigError, match=r"'examples.events.format' = 'letor' must be one of"):
        _config(tmp_path, {"format": "letor"})
    with pytest.raises(ConfigError, match=r"'examples.events.input_pattern' = 'events/\*.csv' must use the same"):
        _config(tmp_path, {"input_pattern": "events/*.csv"})
    with pytest.raises(ConfigError, match=r"'examples.events' and 'examples.documents_field' cannot be combined"):
        _config(tmp_path, **{"examples.documents_field": "docs"})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['label'\] in 'examples.events'"):
        _config(tmp_path, {"label": {"click": 1}})


def test_nested_lists_are_checked_inside_the_documents(tmp_path):
    data = tmp_path / "data" / "span-1"
    data.mkdir(parents=True)
    rows = [{"query_id": "q1", "query_length": 2, "docs": [{"doc_id": "a", "price": 1.0, "label": 1}]}]
    (data / "lists.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    config = tiny_config(
        tmp_path, **{"examples.input_pattern": "span-{SPAN}/*.jsonl", "examples.documents_field": "docs"}
    )
    report = preflight(config, str(DEFAULT_SCHEMA_PATH))
    (never,) = [w for w in report.warnings if "never occur" in w]
    never = never.rsplit(": ", 1)[1].split(", ")
    assert "price" not in never and "query_length" not in never and "rating" in never
    (data / "lists.jsonl").write_text(json.dumps({"query_id": "q1", "docs": [{"doc_id": "a", "price": 1.0}]}) + "\n")
    with pytest.raises(PreflightError, match=r"lists.jsonl: the first 1 rows have no label 'label'"):
        preflight(config, str(DEFAULT_SCHEMA_PATH))


def test_the_pipeline_passes_events_and_documents_field_to_example_gen(tmp_path):
    from tfx import v1 as tfx

    schema = tfx.components.ImportSchemaGen(schema_file=str(DEFAULT_SCHEMA_PATH)).outputs["schema"]
    config = _config(tmp_path)
    component = _example_gen(config, schema=schema, range_config=None)
    assert json.loads(component.exec_properties["events_options"])["labels"] == EVENTS["labels"]
    nested = tiny_config(tmp_path, **{"examples.documents_field": "docs"})
    component = _example_gen(nested, schema=schema, range_config=None)
    assert json.loads(component.exec_properties["format_options"])["documents_field"] == "docs"
    assert component.exec_properties["events_options"] is None


@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_init_recognises_nested_list_exports(tmp_path, ext):
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    from pipeline.init_project import build_project, config_text

    data = tmp_path / "data" / "span-1"
    data.mkdir(parents=True)
    rows = [
        {
            "query_id": f"q{i}",
            "query_length": i % 4 + 1,
            "docs": [{"item": f"d{j}", "price": 1.5 * j + i, "label": (i + j) % 3} for j in range(5)],
        }
        for i in range(30)
    ]
    text = "\n".join(json.dumps(r) for r in rows) + "\n"
    if ext == "jsonl":
        (data / "lists.jsonl").write_text(text)
    else:
        pq.write_table(pj.read_json(pa.BufferReader(text.encode())), data / "lists.parquet")
    project = build_project(str(tmp_path / "data"))
    assert project.documents_field == "docs"
    roles = {c.source: c.role for c in project.columns if not c.left_out}
    assert roles["query_id"] == "query_id" and roles["label"] == "label"
    assert roles["query_length"] == "context" and roles["price"] == "document"
    assert sorted(project.list_sizes) == [5] * 30
    config = config_text(project, str(tmp_path), "schema.pbtxt")
    assert '  documents_field: "docs"' in config
    # What init writes loads and passes preflight as it is.
    import io

    from pipeline.config import load_config
    from pipeline.init_project import init_project

    init_project(str(tmp_path / "data"), str(tmp_path / "project"), out=io.StringIO())
    loaded = load_config(tmp_path / "project" / "config.yaml")
    assert loaded.examples.documents_field == "docs"
    report = preflight(loaded, str(tmp_path / "project" / "schema.pbtxt"))
    assert report.span == 1
