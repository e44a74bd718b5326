"""JSON Lines read column-wise by ``pyarrow.json`` give what the line-by-line reader gives.

``formats.read_jsonl`` reads a chunk with ``pyarrow.json`` when every line is one JSON object and
the wanted keys hold strings, integers or numbers (``_jsonl_columns``), and line by line with
``json.loads`` otherwise. Both readings of each chunk below are typed as the ExampleGen types
them: the typed columns, the rows set aside (line and reason) and the lines must be equal, and
the column-wise path must have been taken exactly where it claims to apply.
"""

from __future__ import annotations

import json

import pytest

from components.elwc_example_gen import columns as columns_lib
from components.elwc_example_gen import formats
from components.elwc_example_gen.formats import FormatOptions
from modules.features import load_feature_set

FEATURES = load_feature_set()
OPTIONS = FormatOptions()


def _lines(*rows) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


COLUMN_WISE = [
    # strings, ints, floats, nulls, absent keys, unknown keys (even nested), blank lines, CRLF
    _lines(
        {"query_id": "q1", "doc_id": "d1", "label": 2, "price": 10, "rating": 4.5, "extra": {"x": [1]}},
        "",
        "   ",
        {"query_id": "q1", "doc_id": "d2", "label": 0, "price": 10.25, "rating": None},
        {"query_id": "q2", "doc_id": "d7", "label": 1.0, "position": 3, "ctr_7d": "0.5"},
    ).replace("\n\n", "\r\n\n"),
    # bad values named by their line: out of range, not a number, missing query id, NaN is missing
    _lines(
        {"query_id": "q1", "label": 9, "price": "1"},
        {"query_id": "q1", "label": 1, "price": "cheap"},
        {"label": 1, "price": "2"},
        {"query_id": "q3", "label": 1, "price": " 3 ", "rating": float("nan")},
        {"query_id": "q3", "label": 1, "price": "NA", "num_reviews": 3.5, "rating": 2.5},
    ),
    # no line has the position key; unicode escapes; integer ids
    _lines({"query_id": "q\u00e9", "doc_id": "d\u00e9", "label": 1}, {"query_id": "5", "label": 3}),
    _lines({"query_id": 12, "doc_id": 7, "label": 1}, {"query_id": 12, "doc_id": -3, "label": 0}),
]
LINE_BY_LINE = [
    _lines({"query_id": "q1", "label": 1}, "{not json", {"query_id": "q1", "label": 2}),  # a bad line
    _lines({"query_id": "q1", "label": 1}, "[1, 2]"),  # not an object
    _lines({"query_id": "q1", "label": 1}) + '{"query_id": "q2", "label": 1} {"query_id": "q3", "label": 1}\n',
    _lines({"query_id": "q1", "label": 1, "price": True}),  # a boolean
    _lines({"query_id": "q1", "label": 1, "doc_id": 1.5}),  # a fraction for a BYTES feature
    _lines({"query_id": "q1", "label": 1, "doc_id": "2024-01-01"}),  # date-like: pyarrow makes a timestamp
    _lines({"query_id": "q1", "label": 1, "num_reviews": 2**60}),  # beyond float64's exact integers
    _lines({"query_id": "q1", "label": 1}, {"query_id": 3, "label": 1}),  # a key changing type
    _lines({"query_id": "q1", "label": 1, "price": 1}, {"query_id": "q1", "label": 1, "price": "cheap"}),
    '{"query_id": "q1", "label": 1}\r{"query_id": "q2", "label": 1}\n',  # a lone CR
    _lines({"query_id": "q1", "label": 1, "doc_id": [1]}),  # an array
]


def _typed(raw: formats.RawFile):
    typed = columns_lib.type_table(raw.columns, raw.num_rows, FEATURES)
    dead = formats.typed_dead_letter(raw, typed.bad, "f.jsonl")
    return typed, dead


@pytest.mark.parametrize("text", COLUMN_WISE + LINE_BY_LINE)
def test_column_wise_and_line_by_line_json_lines_read_the_same(text, monkeypatch):
    data = text.encode()
    wanted = {OPTIONS.source_column(f.name): f.name for f in FEATURES.features}
    assert (formats._jsonl_columns(data, wanted, FEATURES) is not None) == (text in COLUMN_WISE)
    fast = formats.read_jsonl(data, "f.jsonl", OPTIONS, FEATURES, first_line=3)
    monkeypatch.setattr(formats, "_jsonl_columns", lambda *args: None)
    slow = formats.read_jsonl(data, "f.jsonl", OPTIONS, FEATURES, first_line=3)
    assert fast.num_rows == slow.num_rows and fast.lines.tolist() == slow.lines.tolist()
    (fast_typed, fast_dead), (slow_typed, slow_dead) = _typed(fast), _typed(slow)
    assert fast_typed.columns.keys() == slow_typed.columns.keys()
    for name, column in slow_typed.columns.items():
        assert fast_typed.columns[name].equals(column), name
    assert fast_typed.bad == slow_typed.bad and fast_typed.missing == slow_typed.missing
    assert [{k: v for k, v in e.items() if k != "raw"} for e in fast_dead] == [
        {k: v for k, v in e.items() if k != "raw"} for e in slow_dead
    ]


def test_column_wise_json_lines_name_bad_rows_by_file_line():
    raw = formats.read_jsonl(COLUMN_WISE[1].encode(), "f.jsonl", OPTIONS, FEATURES, first_line=10)
    _, dead = _typed(raw)
    assert [(e["line"], e["reason"]) for e in dead] == [
        (10, "label_out_of_range"),
        (11, "bad_value"),
        (12, "missing_query_id"),
        (14, "bad_value"),
    ]
    assert dead[1]["raw"]["price"] == "cheap" and dead[0]["raw"]["label"] == "9"
