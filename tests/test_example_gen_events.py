"""Labels from interaction logs (examples.events): the join, the label mapping, the flat outcome shape."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from tfx import v1 as tfx
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.elwc_example_gen import ElwcExampleGen
from components.elwc_example_gen import events as events_lib
from components.elwc_example_gen import executor as executor_lib
from components.elwc_example_gen.formats import FormatOptions
from modules.features import DEFAULT_SCHEMA_PATH
from pipeline.report import latest_run_report
from tests.helpers import dead_letter, example_gen_summary, read_lists, schema_artifact

LABELS = {"purchase": 2, "add_to_cart": 1, "click": 1}
COLUMNS = {"query_id": "request_id", "doc_id": "item_id"}
IMPRESSIONS = """request_id,item_id,position,query_length,price
r1,a,1,3,10.0
r1,b,2,3,20.0
r1,c,3,3,30.0
r2,a,1,1,10.0
r2,d,2,1,
r3,e,1,2,5.0
"""
EVENTS = """request_id,item_id,event,timestamp
r1,a,click,2024-05-01T10:00:00Z
r1,b,click,2024-05-01T10:00:05Z
r1,a,purchase,2024-05-01T10:03:00Z
r1,b,click,2024-05-01T10:00:05Z
r9,z,click,2024-05-01T10:00:00Z
r1,c,view,2024-05-01T10:00:00Z
r2,d,add_to_cart,2024-05-01 11:00:00
r2,d,click,yesterday
"""
# A second file of the same span, logged later: its events still count.
LATE_EVENTS = """request_id,item_id,event,timestamp
r2,a,purchase,2024-05-03T09:00:00+02:00
r1,b,click,1714557605
"""


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _events(**overrides) -> events_lib.EventsOptions:
    values = {
        "input_pattern": "span-{SPAN}/events/*.csv",
        "timestamp_column": "timestamp",
        "labels": LABELS,
        **overrides,
    }
    return events_lib.EventsOptions(**values)


def _run(tmp_path, pattern, events, span=1, max_bad=1.0, columns=COLUMNS):
    """ElwcExampleGen's executor on tmp_path/data, as the driver leaves it (pattern resolved, span set)."""
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out" / "examples" / "1")
    output = example_gen_pb2.Output()
    output.split_config.splits.add(name="train", hash_buckets=1)
    exec_properties = {
        "input_base": str(tmp_path / "data"),
        "input_config": proto_utils.proto_to_json(
            example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split", pattern=pattern)])
        ),
        "output_config": proto_utils.proto_to_json(output),
        "max_list_size": 0,
        "format_options": FormatOptions(columns=dict(columns)).to_json(),
        "max_bad_row_fraction": max_bad,
        "events_options": events.to_json(),
        "span": span,
        "version": None,
    }
    executor_lib.Executor().Do({"schema": [schema_artifact(tmp_path)]}, {"examples": [examples]}, exec_properties)
    return examples


def _labels(examples) -> dict[tuple[str, str], int]:
    out = {}
    for elwc in read_lists(examples.uri, "train"):
        query = elwc.context.features.feature["query_id"].bytes_list.value[0].decode()
        for doc in elwc.examples:
            item = doc.features.feature["doc_id"].bytes_list.value[0].decode()
            out[(query, item)] = doc.features.feature["label"].int64_list.value[0]
    return out


def test_highest_grade_wins_and_unknown_types_have_no_grade():
    grades = events_lib.event_grades(pa.array(["click", "purchase", "view", None]), LABELS).to_pylist()
    assert grades == [1, 2, None, None]
    assert events_lib.label_of([1, 2, None, 1]) == 2
    assert events_lib.label_of([1, 1, 1]) == 1  # duplicates change nothing
    assert events_lib.label_of([]) == 0  # no event: a negative
    assert events_lib.label_of([None]) == 0


def test_outcome_columns_map_to_the_highest_true_grade():
    outcomes = {
        "bought": pa.array(["1", "0", "", "yes", "maybe"]),
        "clicked": pa.array([1, 1, 0, None, 0], pa.int64()),
    }
    labels, bad = events_lib.outcome_labels(outcomes, {"bought": 2, "clicked": 1}, 5)
    assert labels.tolist() == [2, 1, 0, 2, 0]
    assert bad == [None, None, None, None, "bought"]


def test_timestamps_are_validated_only():
    bad = events_lib.check_timestamps(pa.array(["2024-05-01T10:00:00Z", "2024-05-01 10:00:00", "1714557605", None]))
    assert not bad.any()
    bad = events_lib.check_timestamps(pa.array(["2024-05-01T10:00:00Z", "yesterday", None, ""]))
    assert bad.tolist() == [False, True, False, False]


def test_events_join_impressions_by_request_and_item(tmp_path):
    data = tmp_path / "data"
    _write(data / "span-1" / "impressions" / "part-00000.csv", IMPRESSIONS)
    _write(data / "span-1" / "events" / "part-00000.csv", EVENTS)
    _write(data / "span-1" / "events" / "part-00001.csv", LATE_EVENTS)
    # Another span's events are not this span's: r1/c stays a negative.
    _write(data / "span-2" / "events" / "part-00000.csv", "request_id,item_id,event,timestamp\nr1,c,purchase,\n")

    examples = _run(tmp_path, "span-1/impressions/*.csv", _events())

    assert _labels(examples) == {
        ("r1", "a"): 2,  # click then purchase: the highest grade
        ("r1", "b"): 1,  # the same click three times (one late, in the second file)
        ("r1", "c"): 0,  # only an event type the mapping does not know
        ("r2", "a"): 2,  # a late event (next file, two days later) still counts
        ("r2", "d"): 1,  # add_to_cart; its click with a bad timestamp is set aside
        ("r3", "e"): 0,  # no event at all
    }
    events_file = str(data / "span-1" / "events" / "part-00000.csv")
    dead = [(e["reason"], e["source"], e["line"]) for e in dead_letter(examples)]
    assert dead == [("event without impression", events_file, 6), ("bad_timestamp", events_file, 9)]
    summary = example_gen_summary(examples)
    assert summary["dead_letter"] == {"bad_timestamp": 1, "event without impression": 1}
    assert summary["rows_read"] == 6 + 8 + 2  # impressions and events
    events = summary["events"]
    assert events["rows"] == 10 and events["files"] == 2
    assert events["duplicates"] == 1  # r1/b's identical click (same time); the epoch one is another event
    assert events["ignored_types"] == {"view": 1}
    assert events["labels"] == {"0": 2, "1": 2, "2": 2}
    # Missing feature values stay missing (r2/d has no price), as for labelled logs.
    (r2,) = [
        e
        for e in read_lists(examples.uri, "train")
        if e.context.features.feature["query_id"].bytes_list.value[0] == b"r2"
    ]
    assert [("price" in d.features.feature) for d in r2.examples] == [True, False]


def test_an_impression_without_item_id_is_set_aside_not_labelled(tmp_path):
    data = tmp_path / "data"
    _write(data / "imp" / "a.csv", "request_id,item_id,position\nr1,a,1\nr1,,2\n")
    _write(data / "ev" / "a.csv", "request_id,item_id,event\nr1,a,click\n")
    examples = _run(tmp_path, "imp/*.csv", _events(input_pattern="ev/*.csv", timestamp_column=None), span=0)
    assert _labels(examples) == {("r1", "a"): 1}
    assert [(e["reason"], e["line"]) for e in dead_letter(examples)] == [("missing_doc_id", 3)]


def test_events_without_impressions_over_the_allowed_fraction_fail_the_run(tmp_path):
    data = tmp_path / "data"
    _write(data / "imp" / "a.csv", "request_id,item_id,position\nr1,a,1\n")
    _write(data / "ev" / "a.csv", "request_id,item_id,event\nr1,a,click\nr7,x,click\nr8,y,click\n")
    with pytest.raises(executor_lib.TooManyBadRowsError, match=r"ev/a.csv:3: event without impression"):
        _run(tmp_path, "imp/*.csv", _events(input_pattern="ev/*.csv", timestamp_column=None), span=0, max_bad=0.1)


def test_flat_outcome_columns_go_through_the_same_mapping(tmp_path):
    data = tmp_path / "data"
    _write(
        data / "span-3" / "sales.csv",
        "query_id,doc_id,position,clicked,bought,price\n"
        "m1,a,1,1,1,3.0\nm1,b,2,1,0,4.0\nm1,c,3,0,0,5.0\nm2,a,1,true,,1.0\nm2,b,2,maybe,0,2.0\n",
    )
    flat = events_lib.EventsOptions(input_pattern=None, labels={"bought": 2, "clicked": 1})
    examples = _run(tmp_path, "span-3/*.csv", flat, span=3, columns={})
    assert _labels(examples) == {("m1", "a"): 2, ("m1", "b"): 1, ("m1", "c"): 0, ("m2", "a"): 1}
    dead = dead_letter(examples)
    assert [(e["reason"], e["line"]) for e in dead] == [("bad_outcome", 6)]
    assert "'clicked': 'maybe'" in dead[0]["detail"]
    assert example_gen_summary(examples)["events"]["labels"] == {"0": 1, "1": 2, "2": 1}


def test_flat_shape_without_an_outcome_column_fails_naming_it(tmp_path):
    _write(tmp_path / "data" / "s.csv", "query_id,doc_id,clicked\nm1,a,1\n")
    flat = events_lib.EventsOptions(input_pattern=None, labels={"bought": 2, "clicked": 1})
    with pytest.raises(events_lib.EventsConfigError, match=r"s.csv: the outcome column\(s\) \['bought'\]"):
        _run(tmp_path, "*.csv", flat, span=0, columns={})


def test_events_pattern_resolves_to_the_impressions_span_and_version():
    resolve = events_lib.resolve_pattern
    assert resolve("span-{SPAN}/v{VERSION}/events/*.csv", 12, 3) == "span-12/v3/events/*.csv"
    assert resolve("events/*.csv", 12, None) == "events/*.csv"
    with pytest.raises(events_lib.EventsConfigError, match="examples.events.input_pattern"):
        resolve("span-{SPAN}/v{VERSION}/*.csv", 12, None)


def _pipeline_run(tmp_path):
    schema_gen = tfx.components.ImportSchemaGen(schema_file=str(DEFAULT_SCHEMA_PATH))
    example_gen = ElwcExampleGen(
        input_base=str(tmp_path / "data"),
        schema=schema_gen.outputs["schema"],
        input_config=example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name="all", pattern="span-{SPAN}/impressions/*.csv")]
        ),
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=1)]
            )
        ),
        format_options=FormatOptions(columns=COLUMNS),
        max_bad_row_fraction=1.0,
        events=_events(),
    )
    metadata = str(tmp_path / "md.sqlite")
    tfx.orchestration.LocalDagRunner().run(
        tfx_pipeline.Pipeline(
            pipeline_name="events_test",
            pipeline_root=str(tmp_path / "root"),
            components=[schema_gen, example_gen],
            enable_cache=True,
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata),
        )
    )
    report = latest_run_report(metadata)
    return report.executions["ElwcExampleGen"], report.artifact("Examples")


def test_component_reads_the_latest_spans_events_and_new_events_are_not_a_cache_hit(tmp_path):
    data = tmp_path / "data"
    _write(data / "span-1" / "impressions" / "part-00000.csv", IMPRESSIONS)
    _write(data / "span-1" / "events" / "part-00000.csv", EVENTS)
    _write(data / "span-2" / "impressions" / "part-00000.csv", "request_id,item_id,position\nr5,a,1\nr5,b,2\n")
    _write(data / "span-2" / "events" / "part-00000.csv", "request_id,item_id,event,timestamp\nr5,b,purchase,\n")

    state, artifact = _pipeline_run(tmp_path)
    assert state == "COMPLETE"
    assert artifact.custom_properties["span"].int_value == 2
    assert json.loads(artifact.custom_properties["events"].string_value)["labels"] == {"0": 1, "2": 1}
    labels = {}
    for elwc in read_lists(artifact.uri, "train"):
        for doc in elwc.examples:
            labels[doc.features.feature["doc_id"].bytes_list.value[0]] = doc.features.feature["label"].int64_list.value
    assert labels == {b"a": [0], b"b": [2]}

    assert _pipeline_run(tmp_path)[0] == "CACHED"
    # A late event file for span 2 changes the input: the run is not a cache hit.
    _write(data / "span-2" / "events" / "part-00001.csv", "request_id,item_id,event,timestamp\nr5,a,click,\n")
    state, artifact = _pipeline_run(tmp_path)
    assert state == "COMPLETE"
    labels = sorted(
        (d.features.feature["doc_id"].bytes_list.value[0], d.features.feature["label"].int64_list.value[0])
        for elwc in read_lists(artifact.uri, "train")
        for d in elwc.examples
    )
    assert labels == [(b"a", 1), (b"b", 2)]


def test_events_files_in_parquet_and_json_lines_are_typed_as_the_impressions(tmp_path):
    import pyarrow.parquet as pq

    from modules.features import load_feature_set

    feature_set = load_feature_set()
    options = FormatOptions(columns=COLUMNS)
    events = _events(timestamp_column=None)
    table = pa.table(
        {"request_id": pa.array([7, 7, None]), "item_id": ["a", "b", "c"], "event": ["purchase", "view", "click"]}
    )
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    good, dead, rows = events_lib.read_events(buffer.getvalue().to_pybytes(), "e.parquet", options, feature_set, events)
    assert rows == 3
    assert [(key, value[:2]) for key, value in good] == [
        ((b"7", b"a"), (2, "purchase")),
        ((b"7", b"b"), (None, "view")),
    ]
    assert [(e["reason"], e["line"]) for e in dead] == [("missing_query_id", 3)]
    jsonl = b'{"request_id": "7", "item_id": "a", "event": "click"}\n{"request_id": "7", "item_id": "a"}\n'
    good, dead, rows = events_lib.read_events(jsonl, "e.jsonl", options, feature_set, events)
    assert [key for key, _ in good] == [(b"7", b"a")] and [(e["reason"], e["line"]) for e in dead] == [
        ("missing_event", 2)
    ]


def test_an_events_file_without_the_configured_columns_fails_naming_the_key():
    from modules.features import load_feature_set

    options = FormatOptions(columns=COLUMNS)
    data = b"request_id,item_id,action\nr1,a,click\n"
    with pytest.raises(
        events_lib.EventsConfigError, match=r"e.csv: no column 'event' \(examples.events.event_column\)"
    ):
        events_lib.read_events(data, "e.csv", options, load_feature_set(), _events())
    data = b"request_id,item_id,event\nr1,a,click\n"
    with pytest.raises(
        events_lib.EventsConfigError, match=r"no column 'timestamp' \(examples.events.timestamp_column\)"
    ):
        events_lib.read_events(data, "e.csv", options, load_feature_set(), _events())
