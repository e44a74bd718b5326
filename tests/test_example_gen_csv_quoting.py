"""CSV quoted values that hold newlines: chunks end only between records, lines stay file lines.

``sources.header_chunks`` cuts a CSV file into chunks of about ``chunk_bytes``; a chunk must never
end inside a quoted field, or the two halves of a multi-line value are read as two broken rows.
With a tiny chunk size every quoted value below straddles a chunk boundary: the records written
must be byte-identical to those of a whole-file read, and bad rows must be named by the file line
their record starts on. An unterminated quote fails the run naming the file and line (or, with
``on_corrupt_file: dead_letter``, sets the file aside visibly), never silently.
"""

from __future__ import annotations

import pytest
from tensorflow_serving.apis import input_pb2

from components.elwc_example_gen import formats, sources
from components.elwc_example_gen.formats import FormatOptions
from modules.features import load_feature_set
from tests.helpers import dead_letter, run_example_gen
from tests.test_example_gen_fast_path import _written
from tests.test_example_gen_streaming import TINY, WHOLE, _copy_data, _entries, _run

FEATURES = load_feature_set()
COMMA = sources.CsvQuoting(ord(","), "f.csv")


def _quoted_csv(stray_quote: bool = False) -> tuple[bytes, dict[bytes, list[bytes]]]:
    """CSV whose doc ids hold newlines, delimiters and doubled quotes; the doc ids expected per query."""
    lines = ["query_id,doc_id,position,price,label"]
    expected: dict[bytes, list[bytes]] = {}
    for d in range(8):
        for q in range(3):
            doc = f'doc {d}\nsecond line, with a comma\nand a ""quote""' if d % 2 else f"d{d}"
            lines.append(f'q{q},"{doc}",{d},{q + d / 4},{d % 5}')
            expected.setdefault(f"q{q}".encode(), []).append(doc.replace('""', '"').encode())
    if stray_quote:  # a literal quote inside an unquoted field (not RFC 4180; pyarrow reads it as is)
        lines.append('q0,5" screen,9,1.0,1')
        expected[b"q0"].append(b'5" screen')
    lines.append("q1,bad,1,cheap,1")  # a bad value after the multi-line records
    return ("\n".join(lines) + "\n").encode(), expected


def _doc_ids(record: bytes) -> list[bytes]:
    elwc = input_pb2.ExampleListWithContext.FromString(record)
    return [e.features.feature["doc_id"].bytes_list.value[0] for e in elwc.examples]


def test_csv_chunks_end_between_records_never_inside_a_quoted_value():
    text, _ = _quoted_csv()
    parts = [text[i : i + 7] for i in range(0, len(text), 7)]
    chunks = list(sources.header_chunks(iter(parts), chunk_bytes=40, quoting=COMMA))
    assert len(chunks) > 5
    # Cut anywhere but at a record end, some chunk would end inside a quote: an odd number of them.
    assert all(chunk.count(b'"') % 2 == 0 for _, chunk in chunks)
    header = text.split(b"\n", 1)[0] + b"\n"
    assert b"".join(chunk[len(header) :] for _, chunk in chunks[1:]) == text[len(chunks[0][1]) :]
    file_lines = text.split(b"\n")
    for first, chunk in chunks:  # line L of a chunk (the header being line 1) is file line first + L - 1
        for offset, line in enumerate(chunk.split(b"\n")[1:-1], start=1):
            assert file_lines[first + offset - 1] == line
    # The line-only cut of before this fix splits quoted values.
    assert any(c.count(b'"') % 2 for _, c in sources.header_chunks(iter(parts), chunk_bytes=40))


def test_record_ends_follow_pyarrow_quoting_rules():
    data = b'a,b\n1,"x\ny"\n2,"a""\nb"\n3,5" tv\n4,"q"z\n5,""\n'
    ends = COMMA.record_ends(data)
    assert [data[s:e] for s, e in zip([0, *(ends + 1)], ends, strict=False)] == [
        b"a,b",
        b'1,"x\ny"',
        b'2,"a""\nb"',
        b'3,5" tv',
        b'4,"q"z',
        b'5,""',
    ]
    assert COMMA.open_field(data) == -1 and COMMA.open_field(b'a,b\n1,"x\n2,3\n') == 6


@pytest.mark.parametrize("stray_quote", [False, True])
def test_csv_with_multi_line_quoted_values_reads_the_same_in_tiny_chunks_and_whole(tmp_path, stray_quote):
    text, expected = _quoted_csv(stray_quote)
    _copy_data(tmp_path, {"logs.csv": text})
    assert len(list(sources.header_chunks(iter([text]), TINY, quoting=COMMA))) > 8
    tiny, tiny_dead = _run(tmp_path, "tiny", TINY, "*.csv")
    whole, whole_dead = _run(tmp_path, "whole", WHOLE, "*.csv")
    assert tiny == whole  # byte-identical records
    assert {qid: sorted(_doc_ids(record)) for qid, record in tiny.items()} == {
        qid: sorted(docs) for qid, docs in expected.items()
    }
    bad_line = text.rstrip(b"\n").count(b"\n") + 1  # the last record: its file line, counting continuation lines
    assert [(e["line"], e["reason"]) for e in tiny_dead] == [(bad_line, "bad_value")]
    assert _entries(tiny_dead) == _entries(whole_dead)


def test_read_csv_names_bad_records_by_the_file_line_they_start_on():
    data = b'query_id,doc_id,label\nq1,"d\n1",1\n\nq1,d2\nq1,"a\n\xff",2\nq3,d9,1\n'
    raw = formats.read_csv(data, "f.csv", FormatOptions(), FEATURES, first_line=11)
    assert raw.columns["doc_id"].to_pylist() == ["d\n1", "d9"]
    assert raw.lines.tolist() == [12, 18]
    assert [(e["line"], e["reason"]) for e in raw.dead_letter] == [(15, "column_count"), (16, "undecodable_line")]


def test_an_unterminated_quote_fails_the_run_naming_file_and_line(tmp_path):
    text = b'query_id,doc_id,label\nq1,d1,1\nq1,"d2\nq2,d3,1\nq2,d4,2\n'
    _copy_data(tmp_path, {"logs.csv": text, "more.csv": b"query_id,doc_id,label\nq7,d1,1\n"})
    path = tmp_path / "tiny" / "data" / "logs.csv"
    with pytest.raises(sources.CorruptFileError) as caught:
        run_example_gen(tmp_path / "tiny", {"all": "*.csv"}, options=FormatOptions(chunk_bytes=TINY))
    message = str(caught.value)
    assert "\n" not in message and f"{path}: line 3: unterminated quoted field" in message
    with pytest.raises(sources.CorruptFileError, match="logs.csv: line 3: unterminated quoted field"):
        formats.read_csv(text, "logs.csv", FormatOptions(), FEATURES)  # whole-file reads (events) too
    # Set aside whole and counted when configured: nothing of it written.
    options = FormatOptions(chunk_bytes=TINY, on_corrupt_file="dead_letter")
    examples = run_example_gen(tmp_path / "whole", {"all": "*.csv"}, options=options, max_bad=1.0)
    (entry,) = dead_letter(examples)
    assert entry["reason"] == sources.CORRUPT_FILE and "line 3: unterminated" in entry["detail"]
    assert list(_written(examples)) == [b"q7"]


def test_a_quoted_field_open_too_long_is_reported_before_the_whole_file_is_buffered():
    text = b'a,b\n1,"open\n' + b"2,3\n" * 1000
    quoting = sources.CsvQuoting(ord(","), "big.csv", max_record_bytes=200)
    parts = [text[i : i + 50] for i in range(0, len(text), 50)]
    consumed = []

    def feed():
        for part in parts:
            consumed.append(part)
            yield part

    with pytest.raises(sources.CorruptFileError, match=r"big.csv: line 2: a quoted field is still open"):
        list(sources.line_chunks(feed(), chunk_bytes=20, quoting=quoting))
    assert len(consumed) < len(parts) / 10
