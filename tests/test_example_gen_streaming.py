"""CSV, Parquet and JSON Lines are read a chunk at a time; lists are assembled across chunks.

The chunk size is ``FormatOptions.chunk_bytes``; here it is made tiny so that a small file
is read in many chunks, a query's rows straddle chunk boundaries and are not contiguous
(its rows at the start and at the end of the file). The records written must be byte-identical
to those of a whole-file read, and bad rows must be named by their line (row) in the file.
"""

from __future__ import annotations

import io
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.elwc_example_gen import formats, sources
from components.elwc_example_gen.formats import FormatOptions
from modules.features import load_feature_set
from tests.helpers import dead_letter, run_example_gen
from tests.test_example_gen_fast_path import _written

FEATURES = load_feature_set()
WHOLE = 1 << 30  # larger than any file here: one chunk per file
TINY = 100  # a few rows per chunk


def _rows() -> list[dict]:
    """Queries with rows spread over the file: q0 at the start and at the end, q1..q5 interleaved."""
    rows = []
    for d in range(4):
        rows.append({"query_id": "q0", "doc_id": f"a{d}", "position": d, "price": 10.5 + d, "label": d % 3})
    for d in range(12):
        for q in range(1, 6):
            rows.append({"query_id": f"q{q}", "doc_id": f"d{d}", "position": d, "price": q + d / 4, "label": d % 5})
    for d in range(4, 7):
        rows.append({"query_id": "q0", "doc_id": f"a{d}", "position": d, "price": 1.0 * d, "label": 1})
    return rows


def _csv_text(rows: list[dict]) -> str:
    columns = ["query_id", "doc_id", "position", "price", "label"]
    return "\n".join([",".join(columns)] + [",".join(str(row[c]) for c in columns) for row in rows]) + "\n"


def _run(tmp_path, name: str, chunk_bytes: int, pattern: str):
    options = FormatOptions(format="auto", chunk_bytes=chunk_bytes)
    examples = run_example_gen(tmp_path / name, {"all": pattern}, options=options, max_bad=1.0)
    return _written(examples), dead_letter(examples)


def _copy_data(tmp_path, files: dict[str, bytes]) -> None:
    for name in ("tiny", "whole"):
        data = tmp_path / name / "data"
        data.mkdir(parents=True)
        for file_name, content in files.items():
            (data / file_name).write_bytes(content)


def _entries(dead: list[dict]) -> list[dict]:
    """Dead-letter entries without their source (the two runs read copies in different folders)."""
    return [{k: v for k, v in entry.items() if k != "source"} for entry in dead]


def _lists(written: dict[bytes, bytes]) -> dict[bytes, int]:
    from tensorflow_serving.apis import input_pb2

    return {qid: len(input_pb2.ExampleListWithContext.FromString(r).examples) for qid, r in written.items()}


def test_header_chunks_lead_every_chunk_with_the_header_and_number_lines_in_the_file():
    text = b"h1,h2\n" + b"".join(b"%d,x\n" % i for i in range(1, 40))
    parts = [text[i : i + 7] for i in range(0, len(text), 7)]
    chunks = list(sources.header_chunks(iter(parts), chunk_bytes=20))
    assert len(chunks) > 5
    lines = text.split(b"\n")
    for first, chunk in chunks:
        chunk_lines = chunk.split(b"\n")
        assert chunk_lines[0] == b"h1,h2"
        for offset, line in enumerate(chunk_lines[1:-1], start=1):
            assert lines[first + offset - 1] == line  # line L of a chunk is file line first + L - 1
    assert b"".join(c.split(b"\n", 1)[1] for _, c in chunks[1:]) == text[len(chunks[0][1]) :]


def test_csv_read_in_many_chunks_writes_the_records_of_a_whole_file_read(tmp_path):
    rows = _rows()
    rows[40]["price"] = "cheap"  # a bad value in a later chunk
    text = _csv_text(rows).encode()
    _copy_data(tmp_path, {"logs.csv": text})
    chunks = list(sources.header_chunks(iter([text]), TINY))
    assert len(chunks) > 8
    tiny, tiny_dead = _run(tmp_path, "tiny", TINY, "*.csv")
    whole, whole_dead = _run(tmp_path, "whole", WHOLE, "*.csv")
    assert tiny == whole  # byte-identical records, every list whole
    assert _lists(tiny)[b"q0"] == 7 and all(_lists(tiny)[f"q{q}".encode()] >= 11 for q in range(1, 6))
    assert [(e["line"], e["reason"]) for e in tiny_dead] == [(42, "bad_value")]  # header + 41st row
    assert [(e["line"], e["reason"]) for e in whole_dead] == [(42, "bad_value")]


def test_parquet_read_in_many_row_chunks_writes_the_records_of_a_whole_file_read(tmp_path):
    rows = _rows()
    table = pa.table(
        {
            "query_id": [r["query_id"] for r in rows],
            "doc_id": [r["doc_id"] for r in rows],
            "position": [r["position"] for r in rows],
            "price": [float(r["price"]) for r in rows],
            "label": [r["label"] if i != 50 else 9 for i, r in enumerate(rows)],  # row 51: label out of range
            "unused": ["x"] * len(rows),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=16)
    _copy_data(tmp_path, {"logs.parquet": buffer.getvalue()})
    options = FormatOptions(chunk_bytes=TINY)
    chunks = list(formats.parquet_chunks(io.BytesIO(buffer.getvalue()), "x", options, FEATURES))
    assert len(chunks) > 8
    assert [first for first, _ in chunks] == [1 + sum(len(c) for _, c in chunks[:i]) for i in range(len(chunks))]
    assert "unused" not in chunks[0][1].column_names  # only the schema's columns are read
    tiny, tiny_dead = _run(tmp_path, "tiny", TINY, "*.parquet")
    whole, whole_dead = _run(tmp_path, "whole", WHOLE, "*.parquet")
    assert tiny == whole
    assert _lists(tiny)[b"q0"] == 7
    assert [(e["line"], e["reason"]) for e in tiny_dead] == [(51, "label_out_of_range")]
    assert _entries(tiny_dead) == _entries(whole_dead)


def test_jsonl_read_in_many_chunks_writes_the_records_of_a_whole_file_read(tmp_path):
    lines = [json.dumps(row) for row in _rows()]
    lines[30] = "{not json"
    _copy_data(tmp_path, {"logs.jsonl": ("\n".join(lines) + "\n").encode()})
    tiny, tiny_dead = _run(tmp_path, "tiny", TINY, "*.jsonl")
    whole, whole_dead = _run(tmp_path, "whole", WHOLE, "*.jsonl")
    assert tiny == whole and _lists(tiny)[b"q0"] == 7
    assert [(e["line"], e["reason"]) for e in tiny_dead] == [(31, "unparseable_line")]
    assert _entries(tiny_dead) == _entries(whole_dead)


@pytest.mark.parametrize("name", ["a.csv", "a.parquet"])
def test_a_query_split_over_files_and_chunks_is_one_list(tmp_path, name):
    # q0's rows are in two files and in several chunks of each: one list, in list order.
    rows = _rows()
    halves = {f"1-{name}": rows[: len(rows) // 2], f"2-{name}": rows[len(rows) // 2 :]}
    files = {}
    for file_name, part in halves.items():
        if file_name.endswith(".csv"):
            files[file_name] = _csv_text(part).encode()
        else:
            buffer = io.BytesIO()
            pq.write_table(pa.Table.from_pylist(part), buffer, row_group_size=8)
            files[file_name] = buffer.getvalue()
    _copy_data(tmp_path, files)
    tiny, _ = _run(tmp_path, "tiny", TINY, "*")
    whole, _ = _run(tmp_path, "whole", WHOLE, "*")
    assert tiny == whole and len(tiny) == 6 and _lists(tiny)[b"q0"] == 7
    assert os.listdir(tmp_path / "tiny" / "data") == os.listdir(tmp_path / "whole" / "data")
