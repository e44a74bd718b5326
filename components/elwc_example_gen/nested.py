"""Nested list exports: one row per list, its documents an array of structs (``examples.documents_field``).

The shape BigQuery writes for ``SELECT query_id, query_length, ARRAY_AGG(STRUCT(doc_id, price, label)) AS docs
... GROUP BY ...`` exported as JSON Lines or Parquet::

    {"query_id": "q1", "query_length": 3, "docs": [{"doc_id": "a", "price": 1.5, "label": 2}, ...]}

A file is read natively (``pyarrow.json`` / ``pyarrow.parquet``, ``list<struct>`` columns) and
flattened column-wise into the same raw columns a flat file gives, one row per document
(``pyarrow.compute.list_flatten`` / ``list_parent_indices``; the list's top-level fields are
repeated with ``take``), so typing, validation and list building are those of flat files.
A feature is looked up among the document struct's fields, then among the row's top-level
fields (under its ``examples.columns`` name); one absent from both is missing, as in a flat
file. The query id is always a top-level field (a list's key, also what the first, counting
pass reads). Fields that name no feature are ignored and counted once per file
(``ignored_fields`` in the summary). A row whose documents field is absent, null, empty or
not an array of objects is set aside whole (``bad_documents_field``, with file and line).
JSON Lines that ``pyarrow.json`` cannot read as one table (a field that changes type between
rows) are read again line by line in Python to find and set aside the rows that are bad.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

from components.elwc_example_gen.columns import UNPARSEABLE_LINE
from components.elwc_example_gen.formats import FormatOptions, RawFile, dead_letter_entry, maybe_gunzip
from components.elwc_example_gen.sources import blank_undecodable_lines
from modules.features import FeatureSet

BAD_DOCUMENTS_FIELD = "bad_documents_field"
NESTED_FORMATS = ("jsonl", "parquet")


def read_lists(
    data: bytes | pa.Table, source: str, fmt: str, options: FormatOptions, feature_set: FeatureSet, first_line: int = 1
) -> RawFile:
    """One nested-list file (or a chunk of its rows, ``first_line`` being its first line or row) -> raw
    columns named by feature, one row per document."""
    field = options.documents_field
    if fmt == "parquet":
        table = data if isinstance(data, pa.Table) else pq.read_table(pa.BufferReader(data))
        lines = np.arange(first_line, first_line + table.num_rows)
        dead: list[dict] = []
    elif fmt == "jsonl":
        table, lines, dead = _read_jsonl(data, source, field, first_line)
    else:
        raise ValueError(f"{source}: examples.documents_field '{field}' needs JSON Lines or Parquet files, not {fmt}")
    return flatten(table, lines, dead, source, options, feature_set)


def _non_blank_lines(data: bytes) -> np.ndarray:
    """1-based numbers of the lines holding something other than whitespace."""
    buffer = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(buffer == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(buffer)]))
    space = np.isin(buffer, np.frombuffer(b" \t\r\n", np.uint8))
    non_space = np.concatenate(([0], np.cumsum(~space)))
    return np.flatnonzero(non_space[ends] - non_space[starts] > 0) + 1


def _read_jsonl(data: bytes, source: str, field: str, first_line: int) -> tuple[pa.Table, np.ndarray, list[dict]]:
    data, dead = blank_undecodable_lines(maybe_gunzip(data), source, first_line)
    offset = first_line - 1
    try:
        return _arrow_json(data), _non_blank_lines(data) + offset, dead
    except pa.ArrowInvalid:
        pass
    # Not one table: find the rows that are not JSON objects with an array of objects, set them aside.
    lines = data.split(b"\n")
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        problem, reason = _line_problem(line, field)
        if problem:
            raw = line.decode("utf-8", "replace")[:2000]
            dead.append(dead_letter_entry(reason, source, first_line + index, problem, raw))
            lines[index] = b""
    data = b"\n".join(lines)
    try:
        return _arrow_json(data), _non_blank_lines(data) + offset, dead
    except pa.ArrowInvalid:
        # A value changes type between rows: every value as text, typed by the schema afterwards.
        return _python_json(data), _non_blank_lines(data) + offset, dead


def _arrow_json(data: bytes) -> pa.Table:
    if not data.strip():
        return pa.table({})
    block = min(max(len(data) + 1, 1 << 20), (1 << 31) - 1)
    return pj.read_json(pa.BufferReader(data), read_options=pj.ReadOptions(use_threads=False, block_size=block))


def _line_problem(line: bytes, field: str) -> tuple[str | None, str]:
    try:
        record = json.loads(line)
    except ValueError as error:
        return f"invalid JSON: {error}", UNPARSEABLE_LINE
    if not isinstance(record, dict):
        return "not a JSON object", UNPARSEABLE_LINE
    docs = record.get(field)
    if not isinstance(docs, list) or not all(isinstance(doc, dict) or doc is None for doc in docs):
        return f"'{field}' is not an array of objects: {json.dumps(docs)[:200]}", BAD_DOCUMENTS_FIELD
    return None, ""


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)  # numbers as written; objects and arrays are bad values for the schema


def _python_json(data: bytes) -> pa.Table:
    records = [json.loads(line) for line in data.split(b"\n") if line.strip()]
    top = list(dict.fromkeys(key for record in records for key in record))
    columns = {}
    for key in top:
        values = [record.get(key) for record in records]
        if all(isinstance(v, list) or v is None for v in values):
            docs = [[{k: _text(v) for k, v in (doc or {}).items()} for doc in (value or [])] for value in values]
            names = list(dict.fromkeys(k for doc_list in docs for doc in doc_list for k in doc))
            struct = pa.struct([(name, pa.string()) for name in names])
            columns[key] = pa.array([[{n: d.get(n) for n in names} for d in v] for v in docs], pa.list_(struct))
        else:
            columns[key] = pa.array([_text(v) for v in values], pa.string())
    return pa.table(columns)


def flatten(
    table: pa.Table, lines: np.ndarray, dead: list[dict], source: str, options: FormatOptions, feature_set: FeatureSet
) -> RawFile:
    """Rows of lists -> one raw row per document; rows without a usable documents field are set aside."""
    field = options.documents_field
    if table.num_rows == 0:
        return RawFile({}, 0, np.zeros(0, np.int64), dead)
    column = table.column(field).combine_chunks() if field in table.column_names else None
    if column is None or not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        found = "absent" if column is None else f"of type {column.type}, not an array of objects"
        for line in lines.tolist():
            dead.append(dead_letter_entry(BAD_DOCUMENTS_FIELD, source, line, f"field '{field}' is {found}"))
        return RawFile({}, 0, np.zeros(0, np.int64), dead)
    if not pa.types.is_struct(column.type.value_type) and not pa.types.is_null(column.type.value_type):
        for line in lines.tolist():
            dead.append(
                dead_letter_entry(
                    BAD_DOCUMENTS_FIELD, source, line, f"'{field}' holds {column.type.value_type}, not objects"
                )
            )
        return RawFile({}, 0, np.zeros(0, np.int64), dead)
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    lengths = np.where(column.is_null().to_numpy(zero_copy_only=False), -1, np.nan_to_num(lengths, nan=-1))
    for row in np.flatnonzero(lengths <= 0).tolist():
        what = "null or absent" if lengths[row] < 0 else "an empty array"
        dead.append(dead_letter_entry(BAD_DOCUMENTS_FIELD, source, int(lines[row]), f"'{field}' is {what}"))
    keep = np.flatnonzero(lengths > 0)
    table = table.take(pa.array(keep))
    lines = lines[keep]
    docs = table.column(field).combine_chunks()
    parents = pc.list_parent_indices(docs).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(docs)
    struct_names = (
        [flat.type.field(i).name for i in range(flat.type.num_fields)] if pa.types.is_struct(flat.type) else []
    )
    top_names = [name for name in table.column_names if name != field]
    columns: dict[str, pa.Array] = {}
    used: set[tuple[str, str]] = set()
    query_id = feature_set.query_id.name
    for feature in feature_set.features:
        name = options.source_column(feature.name)
        # The query id is the row's (the first pass counts lists by it, as in flat files), never a document's.
        if name in struct_names and feature.name != query_id:
            columns[feature.name] = pc.struct_field(flat, [struct_names.index(name)])
            used.add(("doc", name))
        elif name in top_names:
            columns[feature.name] = table.column(name).combine_chunks().take(pa.array(parents))
            used.add(("top", name))
    ignored = [n for n in top_names if ("top", n) not in used] + [
        f"{field}.{n}" for n in struct_names if ("doc", n) not in used
    ]
    doc_lines = lines[parents].astype(np.int64)

    def raw_row(i: int) -> dict:
        return {name: _text(column[i].as_py()) for name, column in columns.items()}

    return RawFile(
        columns,
        len(flat),
        doc_lines,
        dead,
        raw_row,
        extra_stats={"ignored_fields": {name: 1 for name in ignored}} if ignored else {},
    )
