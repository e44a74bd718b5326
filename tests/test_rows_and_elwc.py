"""Row parsing and ELWC grouping: the pure logic inside the ExampleGen's Beam steps."""

import pytest
from tensorflow_serving.apis import input_pb2

from components.elwc_example_gen.elwc import build_elwc
from components.elwc_example_gen.rows import BadRowError, ColumnLayout, parse_row, parse_value

HEADER = ["query_id", "doc_id", "position", "query_length", "price", "num_reviews", "rating", "label"]


@pytest.fixture
def layout(feature_set):
    return ColumnLayout.from_header(HEADER, feature_set, "logs.csv")


def _row(layout, feature_set, cells, line=2):
    return parse_row(cells, layout, feature_set, "logs.csv", line)


def test_values_are_typed_by_the_schema(feature_set):
    assert parse_value(feature_set["num_reviews"], "12") == 12
    assert parse_value(feature_set["num_reviews"], "12.0") == 12
    assert parse_value(feature_set["price"], " 9.5 ") == 9.5
    assert parse_value(feature_set["query_id"], "q1") == b"q1"
    for missing in ("", "null", "NaN", "nan", "NA"):
        assert parse_value(feature_set["price"], missing) is None
    with pytest.raises(ValueError, match="not an integer"):
        parse_value(feature_set["num_reviews"], "1.5")
    with pytest.raises(ValueError, match="outside"):
        parse_value(feature_set["rating"], "7")
    with pytest.raises(ValueError):
        parse_value(feature_set["price"], "cheap")


def test_missing_values_are_left_out_not_zeroed(layout, feature_set):
    row = _row(layout, feature_set, ["q1", "d1", "0", "3", "", "5", "null", "2"])
    assert row.query_id == b"q1"
    assert row.context == {"query_id": b"q1", "query_length": 3}
    assert row.document == {"doc_id": b"d1", "position": 0, "num_reviews": 5, "label": 2}
    assert "price" not in row.document and "rating" not in row.document


@pytest.mark.parametrize(
    ("cells", "reason", "message"),
    [
        (["q1", "d1", "0", "3", "cheap", "5", "4", "2"], "bad_value", "logs.csv:7: column 'price'"),
        (["q1", "d1", "0", "3", "1", "5", "4", "9"], "label_out_of_range", "column 'label'"),
        (["", "d1", "0", "3", "1", "5", "4", "2"], "missing_query_id", "column 'query_id' is empty"),
        (["q1", "d1", "0", "3", "1", "5", "4", ""], "missing_label", "column 'label' is empty"),
        (["q1", "d1", "0"], "column_count", "expected 8 columns, found 3"),
    ],
)
def test_bad_rows_name_file_line_and_reason(layout, feature_set, cells, reason, message):
    with pytest.raises(BadRowError, match=message) as caught:
        _row(layout, feature_set, cells, line=7)
    assert caught.value.reason == reason and caught.value.line == 7


def test_header_must_have_query_id_and_label(feature_set):
    with pytest.raises(ValueError, match=r"x.csv: header lacks required column\(s\) \['label'\]"):
        ColumnLayout.from_header(["query_id", "price"], feature_set, "x.csv")


def test_elwc_orders_documents_by_position_then_doc_id_and_caps(layout, feature_set):
    rows = [
        _row(layout, feature_set, ["q1", "b", "", "3", "1", "0", "4", "0"]),
        _row(layout, feature_set, ["q1", "z", "1", "3", "2", "0", "4", "1"]),
        _row(layout, feature_set, ["q1", "a", "", "3", "3", "0", "4", "0"]),
        _row(layout, feature_set, ["q1", "y", "0", "3", "4", "0", "4", "2"]),
    ]
    record, written, cut = build_elwc(rows)
    elwc = input_pb2.ExampleListWithContext.FromString(record)
    doc_ids = [e.features.feature["doc_id"].bytes_list.value[0] for e in elwc.examples]
    assert doc_ids == [b"y", b"z", b"a", b"b"]
    assert (written, cut) == (4, 0)
    assert elwc.context.features.feature["query_length"].int64_list.value == [3]
    assert "price" not in elwc.context.features.feature
    assert elwc.examples[0].features.feature["price"].float_list.value == [4.0]
    # Input order does not change the bytes (the hash split relies on it).
    assert build_elwc(list(reversed(rows)))[0] == record

    capped, written, cut = build_elwc(rows, max_list_size=2)
    assert (written, cut) == (2, 2)
    assert len(input_pb2.ExampleListWithContext.FromString(capped).examples) == 2
