"""The column-wise, chunked ExampleGen path against the row-wise reference, and damaged inputs.

The reference is the row-at-a-time code (``rows.parse_row`` / ``rows.parse_letor_row`` +
``elwc.build_elwc``): the records the executor writes must be byte-identical per query,
and the dead letter must name the same (file, line, reason).
"""

from __future__ import annotations

import csv
import glob
import gzip
import json
import os
import random

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from tensorflow_serving.apis import input_pb2

from components.elwc_example_gen import sources
from components.elwc_example_gen.elwc import build_elwc, elwc_from_values
from components.elwc_example_gen.encode import encode_examples
from components.elwc_example_gen.formats import FormatOptions
from components.elwc_example_gen.rows import BadRowError, ColumnLayout, parse_letor_row, parse_row
from modules.features import Dtype, load_feature_set
from tests.helpers import dead_letter, run_example_gen

FEATURES = load_feature_set()
CSV_COLUMNS = [f.name for f in FEATURES.features]
# LETOR index -> feature: the schema's context and document features in schema order (the default map).
LETOR_MAP = FormatOptions().letor_map(FEATURES)


def _value(rng: random.Random, name: str) -> str:
    feature = FEATURES[name]
    low = feature.min_value if feature.min_value is not None else -50
    high = feature.max_value if feature.max_value is not None else 500
    if feature.dtype == Dtype.INT:
        return str(rng.randint(int(low), int(min(high, 40))))
    value = rng.uniform(low, high)
    return rng.choice([f"{value:.4f}", f"{value:.6g}", f"{low:g}", "+1.5" if high >= 1.5 else "1e-3"])


def _write_fixture(data) -> None:
    """LETOR and CSV logs with missing values, bad rows, and queries spread over files and chunks."""
    rng = random.Random(5)
    data.mkdir(parents=True)
    letor_files = {name: [] for name in ("a.txt", "b.txt", "c.txt.gz")}
    csv_rows = []
    for q in range(40):
        for d in range(rng.randint(1, 9)):
            target = rng.choice([*letor_files, "csv"])
            values = {name: _value(rng, name) for name in LETOR_MAP.values() if rng.random() > 0.25}
            if "position" in values and rng.random() < 0.3:
                values["position"] = str(rng.randint(0, 3))  # ties: broken by doc id, then file and line
            label = str(rng.randint(0, 4))
            if target == "csv":
                row = {"query_id": f"q{q}", "doc_id": f"d{d}", "label": label, **values}
                csv_rows.append(row)
                continue
            tokens = [label, f"qid:q{q}"] + [f"{i}:{values[n]}" for i, n in LETOR_MAP.items() if n in values]
            rng.shuffle(tokens[2:])
            comment = f" # docid = d{d}" if rng.random() < 0.8 else ""
            letor_files[target].append(" ".join(tokens) + comment)
    # Bad rows of every kind, and lines that are not rows.
    letor_files["a.txt"] += [
        "",
        "# a comment line",
        "2 qid:q1 3:abc # docid = bad1",  # bad value
        "7 qid:q1 3:1.0",  # label out of range
        "1 3:1.0",  # missing query id
        "1 qid:q2 oops 3:1",  # malformed token
        "1 qid:q2 3:nan 4:NA # docid = dn",  # missing values spelled out
        "3 qid:q2 1:2.5",  # not an integer for an INT feature
    ]
    csv_rows += [
        {"query_id": "q3", "doc_id": "x", "label": "9"},
        {"query_id": "", "doc_id": "y", "label": "1"},
        {"query_id": "q3", "doc_id": "z", "label": "1", "price": "cheap"},
    ]
    for name, lines in letor_files.items():
        text = ("\n".join(lines) + "\n").encode()
        (data / name).write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    with open(data / "d.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in csv_rows:
            writer.writerow(row)


def _reference(data, max_list_size: int) -> tuple[dict[bytes, bytes], set]:
    """query id -> serialized ELWC, and {(file, line, reason)} of bad rows, row by row."""
    groups: dict[bytes, list] = {}
    dead = set()
    for path in sorted(glob.glob(str(data / "*"))):
        name = os.path.basename(path)
        raw = open(path, "rb").read()
        text = gzip.decompress(raw).decode() if name.endswith(".gz") else raw.decode()
        if name.endswith(".csv"):
            reader = csv.reader(text.splitlines())
            layout = ColumnLayout.from_header(next(reader), FEATURES, path)
            numbered = [(reader.line_num, cells) for cells in reader if cells]
            parse = lambda cells, n, layout=layout, path=path: parse_row(cells, layout, FEATURES, path, n)  # noqa: E731
        else:
            numbered = list(enumerate(text.split("\n"), start=1))
            parse = lambda line, n, path=path: parse_letor_row(line, LETOR_MAP, FEATURES, path, n)  # noqa: E731
        for number, item in numbered:
            try:
                row = parse(item, number)
            except BadRowError as error:
                dead.add((name, error.line, error.reason))
                continue
            if row is not None:
                groups.setdefault(row.query_id, []).append(row)
    return {qid: build_elwc(rows, max_list_size)[0] for qid, rows in groups.items()}, dead


def _written(examples) -> dict[bytes, bytes]:
    files = glob.glob(os.path.join(examples.uri, "Split-*", "*.gz"))
    out = {}
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        record = record.numpy()
        elwc = input_pb2.ExampleListWithContext.FromString(record)
        qid = elwc.context.features.feature["query_id"].bytes_list.value[0]
        assert qid not in out, f"query {qid} written twice"
        out[qid] = record
    return out


@pytest.mark.parametrize("chunk_bytes", [300, 32 << 20])
def test_column_wise_path_writes_exactly_the_row_wise_reference_records(tmp_path, chunk_bytes):
    _write_fixture(tmp_path / "data")
    expected, expected_dead = _reference(tmp_path / "data", max_list_size=4)
    examples = run_example_gen(
        tmp_path, {"all": "*"}, max_list_size=4, options=FormatOptions(format="auto", chunk_bytes=chunk_bytes)
    )
    written = _written(examples)
    assert len(expected) > 30 and written.keys() == expected.keys()
    different = [qid for qid in expected if written[qid] != expected[qid]]
    assert not different, f"{len(different)} lists differ from the reference, e.g. {different[:3]}"
    dead = {(os.path.basename(e["source"]), e["line"], e["reason"]) for e in dead_letter(examples)}
    assert dead == expected_dead and len(dead) == 8
    with open(os.path.join(examples.uri, "summary.json")) as handle:
        summary = json.load(handle)
    assert summary["bad_rows"] == 8
    assert summary["documents_cut_by_max_list_size"] > 0


def test_bulk_encoding_is_protobufs_deterministic_serialization():
    rng = np.random.default_rng(0)
    n = 300
    columns = {
        "z_float": (Dtype.FLOAT, pa.array(rng.normal(0, 1e4, n), mask=rng.random(n) < 0.3)),
        "z": (Dtype.FLOAT, pa.array(rng.normal(0, 1, n))),  # a prefix of another key: upb's order
        "an_int": (Dtype.INT, pa.array(rng.integers(-(2**62), 2**62, n), mask=rng.random(n) < 0.3)),
        "m" * 150: (Dtype.BYTES, pa.array([("é" * int(k)).encode() for k in rng.integers(0, 90, n)], pa.binary())),
        "never": (Dtype.FLOAT, pa.nulls(n, pa.float64())),
    }
    encoded = encode_examples(columns, n).to_pylist()
    for i in range(n):
        values = {name: column[i].as_py() for name, (_, column) in columns.items() if column[i].is_valid}
        values = {k: float(v) if columns[k][0] == Dtype.FLOAT else v for k, v in values.items()}
        expected = elwc_from_values({}, [values]).examples[0].SerializeToString(deterministic=True)
        assert encoded[i] == expected, i
    # Adjacent FLOAT features ("never", "z_float", "z") are encoded as one block: rows taken in any
    # order give the same bytes, and so do blocks without a missing value.
    rows = rng.permutation(n)[:200]
    assert encode_examples(columns, n, rows=rows).to_pylist() == [encoded[i] for i in rows]
    # Names of one length: the block is a (documents, features, entry) cube, with or without missing values.
    x = (Dtype.FLOAT, pa.array(rng.normal(0, 1, n)))
    y = (Dtype.FLOAT, pa.array(rng.normal(0, 1, n), mask=rng.random(n) < 0.3))
    w = (Dtype.FLOAT, pa.nulls(n))  # untyped nulls: no validity buffer
    v = (Dtype.FLOAT, pa.array(rng.normal(0, 1, n + 7), mask=rng.random(n + 7) < 0.3).slice(7))  # an offset
    z, an_int = columns["z"], columns["an_int"]
    cases = ({"x": x, "z": z, "an_int": an_int}, {"v": v, "w": w, "x": x, "y": y, "z": z})
    for same_width in cases:
        records = encode_examples(same_width, n).to_pylist()
        for i, record in enumerate(records):
            values = {name: column[i].as_py() for name, (_, column) in same_width.items() if column[i].is_valid}
            assert record == elwc_from_values({}, [values]).examples[0].SerializeToString(deterministic=True), i
        assert encode_examples(same_width, n, rows=rows).to_pylist() == [records[i] for i in rows]


@pytest.mark.parametrize("name", ["logs.txt", "logs.csv", "logs.jsonl"])
def test_a_line_that_is_not_utf8_goes_to_the_dead_letter_naming_file_and_line(tmp_path, name):
    data = tmp_path / "data"
    data.mkdir()
    good = {
        "logs.txt": [b"1 qid:q1 1:3 # docid = d1", b"2 qid:q1 1:\xff\xfe # docid = d2", b"0 qid:q1 1:4 # docid = d3"],
        "logs.csv": [b"query_id,doc_id,label", b"q1,d1,1", b"q1,d\xff2,2", b"q1,d3,0"],
        "logs.jsonl": [
            b'{"query_id": "q1", "doc_id": "d1", "label": 1}',
            b'{"query_id": "q1", "doc_id": "d\xff", "label": 2}',
            b'{"query_id": "q1", "doc_id": "d3", "label": 0}',
        ],
    }[name]
    (data / name).write_bytes(b"\n".join(good) + b"\n")
    examples = run_example_gen(tmp_path, {"all": "*"}, hash_split=False)
    entries = dead_letter(examples)
    bad_line = 3 if name == "logs.csv" else 2
    assert [(os.path.basename(e["source"]), e["line"], e["reason"]) for e in entries] == [
        (name, bad_line, sources.UNDECODABLE_LINE)
    ]
    assert "\\xff" in entries[0]["raw"] and "UTF-8" in entries[0]["detail"]
    (record,) = _written(examples).values()
    assert len(input_pb2.ExampleListWithContext.FromString(record).examples) == 2  # the other rows are kept


def _truncated_gzip(path, lines: int) -> None:
    text = "".join(f"1 qid:q{i % 7} 1:{i} # docid = d{i}\n" for i in range(lines)).encode()
    compressed = gzip.compress(text)
    path.write_bytes(compressed[: len(compressed) * 2 // 3])


@pytest.mark.parametrize("name", ["part.txt.gz", "part.jsonl.gz"])
def test_a_truncated_gzip_file_fails_the_run_with_one_line_naming_it(tmp_path, name):
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.txt").write_text("1 qid:q1 1:3\n")
    _truncated_gzip(data / name, 3000)
    with pytest.raises(sources.CorruptFileError) as caught:
        run_example_gen(tmp_path, {"all": "*"})
    message = str(caught.value)
    assert "\n" not in message and str(data / name) in message and "truncated" in message
    assert "on_corrupt_file" in message


def test_a_truncated_gzip_file_is_dead_lettered_whole_when_configured(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.txt").write_text("".join(f"1 qid:q{i} 1:3\n" for i in range(50)))
    _truncated_gzip(data / "part.txt.gz", 3000)
    options = FormatOptions(on_corrupt_file="dead_letter")
    examples = run_example_gen(tmp_path, {"all": "*"}, options=options, max_bad=1.0)
    (entry,) = dead_letter(examples)
    assert entry["reason"] == sources.CORRUPT_FILE and entry["source"] == str(data / "part.txt.gz")
    assert entry["rows"] > 1  # the readable part of the file counts as bad rows
    written = _written(examples)
    assert len(written) == 50  # nothing from the damaged file, all of the good one
    with open(os.path.join(examples.uri, "summary.json")) as handle:
        summary = json.load(handle)
    assert summary["dead_letter"] == {sources.CORRUPT_FILE: entry["rows"]}
    # Under a tight budget the same file fails the run as too many bad rows.
    with pytest.raises(RuntimeError, match="corrupt_file"):
        run_example_gen(tmp_path, {"all": "*"}, options=options, max_bad=0.01)


def test_line_chunks_end_at_line_ends_and_number_their_first_line():
    parts = [b"a\nbb\nc", b"cc\n", b"d\ne"]
    chunks = list(sources.line_chunks(iter(parts), chunk_bytes=4))
    assert b"".join(c for _, c in chunks) == b"a\nbb\nccc\nd\ne"
    assert all(c.endswith(b"\n") for _, c in chunks[:-1])
    for first, chunk in chunks:
        assert b"a\nbb\nccc\nd\ne".split(b"\n")[first - 1] == chunk.split(b"\n")[0]


def test_on_corrupt_file_is_a_checked_config_key(tmp_path):
    from pipeline.config import ConfigError, load_config

    assert load_config().examples.on_corrupt_file == "fail"
    path = tmp_path / "c.yaml"
    path.write_text("examples:\n  on_corrupt_file: dead_letter\n")
    assert load_config(path).examples.on_corrupt_file == "dead_letter"
    path.write_text("examples:\n  on_corrupt_file: skip\n")
    with pytest.raises(ConfigError, match="on_corrupt_file.*must be fail or dead_letter"):
        load_config(path)


@pytest.mark.parametrize("chunk_bytes", [64, 32 << 20])
def test_renamed_query_id_and_label_columns_are_read_in_every_pass(tmp_path, chunk_bytes):
    # examples.columns maps schema features to the export's own column names; the light
    # query-id pass that finds queries split over chunks must use the mapping too.
    data = tmp_path / "data"
    data.mkdir()
    rows = ["Search Session,doc_id,position,Relevance Grade,price"]
    rows += [f"s{q},d{d},{d},{(q + d) % 3},{10 + d}" for q in range(6) for d in range(4)]
    (data / "export.csv").write_text("\n".join(rows) + "\n")
    options = FormatOptions(
        format="csv", columns={"query_id": "Search Session", "label": "Relevance Grade"}, chunk_bytes=chunk_bytes
    )
    written = _written(run_example_gen(tmp_path, {"all": "*.csv"}, options=options))
    assert sorted(written) == [f"s{q}".encode() for q in range(6)]
    lists = [input_pb2.ExampleListWithContext.FromString(r) for r in written.values()]
    assert all(len(elwc.examples) == 4 for elwc in lists)
    assert {e.features.feature["label"].int64_list.value[0] for elwc in lists for e in elwc.examples} == {0, 1, 2}
