"""ElwcExampleGen ingestion on Beam: formats, dead letter, caps, query-hash split, ELWC fixtures, summary."""

from __future__ import annotations

import glob
import gzip
import json
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from tensorflow_serving.apis import input_pb2

from components.elwc_example_gen import executor as executor_lib
from components.elwc_example_gen.beam_pipeline import query_bucket
from components.elwc_example_gen.formats import FormatOptions
from tests.helpers import FIXTURES, read_lists, run_example_gen

HEADER = "query_id,doc_id,position,label,price,rating"
ROWS = [
    ("q1", "d2", 1, 2, 10.0, None),
    ("q1", "d1", 0, 4, None, 4.5),
    ("q1", "d3", 2, 0, 3.25, 1.0),
    ("q2", "d9", 0, 1, 7.0, 3.0),
    ("q2", "d8", 1, 3, 1.5, None),
]


def run(tmp_path, splits, **kwargs):
    return run_example_gen(tmp_path, splits, **kwargs)


def lists(examples, split):
    return read_lists(examples.uri, split)


def summary(examples):
    with open(os.path.join(examples.uri, "summary.json")) as handle:
        return json.load(handle)


def dead_letter(examples_or_dir):
    directory = (
        examples_or_dir if isinstance(examples_or_dir, str) else os.path.join(examples_or_dir.uri, "dead_letter")
    )
    entries = []
    for path in glob.glob(os.path.join(directory, "*.jsonl")):
        with open(path) as handle:
            entries += [json.loads(line) for line in handle if line.strip()]
    return sorted(entries, key=lambda e: (e["source"], e["line"], e["reason"]))


def _as_dict(elwc):
    def values(features):
        out = {}
        for name, feature in features.feature.items():
            kind = feature.WhichOneof("kind")
            out[name] = list(getattr(feature, kind).value)
        return out

    return values(elwc.context.features), [values(e.features) for e in elwc.examples]


def _write_all_formats(data):
    data.mkdir(parents=True)
    cell = lambda v: "" if v is None else str(v)  # noqa: E731
    (data / "logs.csv").write_text(HEADER + "\n" + "\n".join(",".join(cell(v) for v in row) for row in ROWS) + "\n")
    names = HEADER.split(",")
    with gzip.open(data / "logs.jsonl.gz", "wt") as handle:
        for row in ROWS:
            handle.write(json.dumps({k: v for k, v in zip(names, row, strict=True) if v is not None}) + "\n")
    table = pa.table({name: [row[i] for row in ROWS] for i, name in enumerate(names)})
    pq.write_table(table, data / "logs.parquet")
    letor = []
    for qid, doc, pos, label, price, rating in ROWS:
        tokens = [str(label), f"qid:{qid}", f"1:{pos}"]
        tokens += [f"2:{price}"] if price is not None else []
        tokens += [f"3:{rating}"] if rating is not None else []
        letor.append(" ".join(tokens) + f" # docid = {doc}")
    (data / "logs.txt").write_text("# MSLR-style header comment\n" + "\n".join(letor) + "\n")


def test_every_format_gives_the_same_lists_and_missing_values_stay_absent(tmp_path):
    _write_all_formats(tmp_path / "data")
    options = FormatOptions(letor_features={"1": "position", "2": "price", "3": "rating"})
    splits = {"csv": "*.csv", "jsonl": "*.jsonl.gz", "parquet": "*.parquet", "letor": "*.txt"}
    examples = run(tmp_path, splits, hash_split=False, options=options)
    by_format = {name: sorted(map(_as_dict, lists(examples, name)), key=lambda d: d[0]["query_id"]) for name in splits}
    expected = by_format["csv"]
    assert len(expected) == 2
    context, docs = expected[0]
    assert context == {"query_id": [b"q1"]}
    assert [d["doc_id"] for d in docs] == [[b"d1"], [b"d2"], [b"d3"]]  # by position
    assert "price" not in docs[0] and "rating" not in docs[1]  # missing, not zero
    assert docs[2]["price"] == [3.25] and docs[0]["label"] == [4]
    for name in ("jsonl", "parquet", "letor"):
        assert by_format[name] == expected, name
    result = summary(examples)
    assert result["rows_read"] == 4 * len(ROWS) and result["bad_rows"] == 0
    assert result["missing_values"]["rating"] == 4 * 2 and result["missing_values"]["price"] == 4
    assert result["splits"]["letor"] == {
        "lists": 2,
        "documents": 5,
        "list_size": {
            "count": 2,
            "min": 2,
            "max": 3,
            "mean": 2.5,
            "p50": 2,
            "p90": 3,
            "p99": 3,
            "histogram": {"2": 1, "3": 1},
        },
    }
    assert examples.get_int_custom_property("csv_documents") == 5
    assert examples.get_string_custom_property("payload_format") == "FORMAT_PROTO"


def test_bad_rows_go_to_the_dead_letter_with_reason_file_and_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text(
        HEADER + "\n"
        "q1,d1,0,1,1.0,4\n"
        "q1,d2,1,1,cheap,4\n"  # line 3: bad_value
        "\n"
        "q1,d3,2,9,1.0,4\n"  # line 5: label out of range
        ",d4,0,1,1.0,4\n"  # line 6: missing query id
        "q1,d5,3,1\n"  # line 7: column count
        "q1,d6,4,,2.0,3\n"  # line 8: missing label
        "q1,d7,5,1,2.0,7\n"  # line 9: rating outside [0, 5]
    )
    (data / "b.jsonl").write_text('{"query_id": "q2", "label": 1}\n{not json\n{"query_id": "q2", "label": true}\n')
    (data / "c.txt").write_text("1 qid:q3 1:0 2:1.5\n2 qid:q3 oops\n1 1:0\n")
    examples = run(
        tmp_path, {"single_split": "*"}, options=FormatOptions(letor_features={"1": "position", "2": "price"})
    )
    entries = dead_letter(examples)
    found = [(os.path.basename(e["source"]), e["line"], e["reason"]) for e in entries]
    assert found == [
        ("a.csv", 3, "bad_value"),
        ("a.csv", 5, "label_out_of_range"),
        ("a.csv", 6, "missing_query_id"),
        ("a.csv", 7, "column_count"),
        ("a.csv", 8, "missing_label"),
        ("a.csv", 9, "bad_value"),
        ("b.jsonl", 2, "unparseable_line"),
        ("b.jsonl", 3, "bad_value"),
        ("c.txt", 2, "unparseable_line"),
        ("c.txt", 3, "missing_query_id"),
    ]
    assert "column 'price'" in entries[0]["detail"] and entries[0]["raw"]["price"] == "cheap"
    result = summary(examples)
    assert result["dead_letter"] == {
        "bad_value": 3,
        "column_count": 1,
        "label_out_of_range": 1,
        "missing_label": 1,
        "missing_query_id": 2,
        "unparseable_line": 2,
    }
    assert result["rows_read"] == 13 and result["bad_rows"] == 10
    all_lists = lists(examples, "train") + lists(examples, "eval")
    assert sorted(len(e.examples) for e in all_lists) == [1, 1, 1]  # the good rows of q1, q2, q3


def test_too_many_bad_rows_fail_the_run_and_keep_the_dead_letter_outside_the_artifact(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text(HEADER + "\nq1,d1,0,1,1.0,4\nq1,d2,1,1,cheap,4\n")
    with pytest.raises(executor_lib.TooManyBadRowsError, match=r"1 of 2 rows \(50.00%\).*a.csv:3: bad_value") as caught:
        run(tmp_path, {"single_split": "*.csv"}, max_bad=0.25)
    kept = str(tmp_path / "out" / "failed_runs" / "7" / "dead_letter")
    assert kept in str(caught.value)
    assert [e["line"] for e in dead_letter(kept)] == [3]
    # Under the threshold the same input succeeds.
    assert summary(run(tmp_path, {"single_split": "*.csv"}, max_bad=0.5))["bad_rows"] == 1


def test_lists_are_capped_by_position_across_files_and_the_cut_is_counted(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text(HEADER + "\nq1,d5,5,1,1,1\nq1,d1,1,1,1,1\nq1,d3,3,1,1,1\nq2,x,0,1,1,1\n")
    (data / "b.csv").write_text(HEADER + "\nq1,d2,2,1,1,1\nq1,d0,0,1,1,1\nq1,d4,4,1,1,1\n")
    examples = run(tmp_path, {"single_split": "*.csv"}, max_list_size=3)
    q1 = [e for e in lists(examples, "train") + lists(examples, "eval") if len(e.examples) > 1]
    assert [[d.features.feature["doc_id"].bytes_list.value[0] for d in e.examples] for e in q1] == [
        [b"d0", b"d1", b"d2"]
    ]
    result = summary(examples)
    assert result["documents_cut_by_max_list_size"] == 3 and result["lists_capped"] == 1
    assert examples.get_int_custom_property("documents_cut_by_max_list_size") == 3


def test_split_by_query_hash_keeps_every_query_whole_in_one_split(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for part in range(3):  # every query has rows in all three files
        rows = [f"q{q},d{part},{part},1,1.0,3" for q in range(120)]
        (data / f"part-{part}.csv").write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    examples = run(tmp_path, {"single_split": "*.csv"})
    seen = {}
    for split in ("train", "eval"):
        for elwc in lists(examples, split):
            qid = elwc.context.features.feature["query_id"].bytes_list.value[0]
            assert qid not in seen
            seen[qid] = split
            assert len(elwc.examples) == 3
            assert split == ("train" if query_bucket(qid, 4) < 3 else "eval")
    assert len(seen) == 120 and 0 < list(seen.values()).count("eval") < 60
    result = summary(examples)
    assert result["splits"]["train"]["lists"] + result["splits"]["eval"]["lists"] == 120


def _fixture_schema(tmp_path):
    lines = [
        'feature { name: "query_id" type: BYTES annotation { tag: "role:query_id" } }',
        'feature { name: "utility" type: INT int_domain { min: 0 max: 4 } annotation { tag: "role:label" } }',
    ]
    for i in range(1, 137):
        lines.append(
            f'feature {{ name: "custom_features_{i}" type: FLOAT '
            'annotation { tag: "role:document" tag: "default:0" } }'
        )
    path = tmp_path / "fixture_schema.pbtxt"
    path.write_text("\n".join(lines))
    return path


def test_elwc_written_by_tf_ranking_is_validated_and_resplit(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(os.path.join(FIXTURES, "train_numerical_elwc.tfrecord"), data / "train.tfrecord")
    with open(os.path.join(FIXTURES, "vali_numerical_elwc.tfrecord"), "rb") as src:
        (data / "vali.tfrecord.gz").write_bytes(gzip.compress(src.read()))
    # One list whose second document has a label outside the schema's range.
    bad = input_pb2.ExampleListWithContext()
    for label in (1, 9):
        bad.examples.add().features.feature["utility"].int64_list.value.append(label)
    with tf.io.TFRecordWriter(str(data / "bad.tfrecord")) as writer:
        writer.write(bad.SerializeToString())
    examples = run(tmp_path, {"single_split": "*.tfrecord*"}, schema=_fixture_schema(tmp_path))
    result = summary(examples)
    assert result["rows_read"] == 119 + 36 + 2
    assert result["dead_letter"] == {"label_out_of_range": 1}
    assert result["synthesized_query_ids"] == 27 + 9 + 1
    all_lists = lists(examples, "train") + lists(examples, "eval")
    assert len(all_lists) == 37 and sum(len(e.examples) for e in all_lists) == 119 + 36 + 1
    assert result["splits"]["eval"]["lists"] > 0
    (entry,) = dead_letter(examples)
    assert entry["source"].endswith("bad.tfrecord") and entry["line"] == 1 and entry["document"] == 2
    original = input_pb2.ExampleListWithContext.FromString(
        next(iter(tf.data.TFRecordDataset(os.path.join(FIXTURES, "train_numerical_elwc.tfrecord")))).numpy()
    )
    _, original_docs = _as_dict(original)
    match = [e for e in all_lists if len(e.examples) == len(original.examples) and _as_dict(e)[1] == original_docs]
    assert len(match) == 1 and match[0].context.features.feature["query_id"].bytes_list.value[0].startswith(b"elwc-")
