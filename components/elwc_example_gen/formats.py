"""Readers of the flat input formats: one file's bytes -> raw columns named by schema feature.

Every reader returns a :class:`RawFile`: raw (untyped or natively typed) columns
keyed by schema feature name, the source line (or row/record number) of each
row, and dead-letter entries for rows that never made it into a column (wrong
column count, unparseable JSON or LETOR line). Typing and validation happen
afterwards, column-wise, in :mod:`columns`.

Formats (``examples.format``; ``auto`` infers it per file from the extension,
a trailing ``.gz`` means GZIP):

* ``csv``      ``.csv``/``.tsv``: header row, one row per (query, document).
* ``jsonl``    ``.jsonl``/``.ndjson``/``.json``: one JSON object per line.
* ``parquet``  ``.parquet``/``.pq``: natively typed columns.
* ``letor``    ``.txt``/``.svm``/``.libsvm``/``.letor``: ``label qid:Q idx:val ... # comment``.
* ``elwc``     ``.tfrecord``/``.tfrecords``/``.elwc``: existing ELWC records (see :mod:`elwc_input`).
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from components.elwc_example_gen.columns import COLUMN_COUNT, UNPARSEABLE_LINE
from modules.features import FeatureSet, Role

FORMATS = ("auto", "csv", "jsonl", "parquet", "letor", "elwc")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "letor",
    ".svm": "letor",
    ".libsvm": "letor",
    ".letor": "letor",
    ".tfrecord": "elwc",
    ".tfrecords": "elwc",
    ".elwc": "elwc",
}
_DOCID_COMMENT = re.compile(r"docid\s*=\s*(\S+)")


class UnknownFormatError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class FormatOptions:
    """How raw inputs map onto the schema (``examples.columns``, ``examples.letor_features``)."""

    format: str = "auto"
    # Schema feature name -> column/key name in CSV, JSON Lines and Parquet inputs (default: the same name).
    columns: dict[str, str] = dataclasses.field(default_factory=dict)
    # LETOR feature index (as text) -> schema feature name. Empty: the schema's context and
    # document features, in schema order, are indices 1, 2, 3, ...
    letor_features: dict[str, str] = dataclasses.field(default_factory=dict)
    csv_delimiter: str = ""  # "" = ',' (or tab for .tsv)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FormatOptions:
        return cls(**json.loads(text)) if text else cls()

    def source_column(self, feature_name: str) -> str:
        return self.columns.get(feature_name, feature_name)

    def letor_map(self, feature_set: FeatureSet) -> dict[str, str]:
        if self.letor_features:
            return dict(self.letor_features)
        numbered = [f for f in feature_set.features if f.role in (Role.CONTEXT, Role.DOCUMENT)]
        return {str(i): f.name for i, f in enumerate(numbered, start=1)}


def infer_format(path: str, configured: str = "auto") -> str:
    """The configured format, or the one the file name implies."""
    if configured != "auto":
        if configured not in FORMATS:
            raise UnknownFormatError(f"unknown input format '{configured}'; expected one of {FORMATS}")
        return configured
    name = path.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for extension, fmt in _EXTENSIONS.items():
        if name.endswith(extension):
            return fmt
    raise UnknownFormatError(
        f"{path}: cannot infer the input format from the extension; set examples.format to one of {FORMATS[1:]}"
    )


def maybe_gunzip(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


@dataclasses.dataclass
class RawFile:
    """Raw columns of one file (feature name -> array), the line of each row, rows set aside while reading."""

    columns: dict[str, pa.Array]
    num_rows: int
    lines: np.ndarray
    dead_letter: list[dict]
    raw_rows: object = None  # callable row index -> dict of raw values (for dead-letter entries)


def dead_letter_entry(reason: str, source: str, line: int, detail: str, raw: object = None) -> dict:
    entry = {"reason": reason, "source": source, "line": int(line), "detail": detail}
    if raw is not None:
        entry["raw"] = raw
    return entry


def read_csv(data: bytes, source: str, options: FormatOptions, feature_set: FeatureSet) -> RawFile:
    data = maybe_gunzip(data)
    delimiter = options.csv_delimiter or ("\t" if source.lower().removesuffix(".gz").endswith(".tsv") else ",")
    first_line = data.split(b"\n", 1)[0].decode("utf-8-sig").rstrip("\r")
    header = next(csv.reader([first_line], delimiter=delimiter), [])
    if not header:
        return RawFile({}, 0, np.zeros(0, np.int64), [])
    wanted = {options.source_column(f.name): f.name for f in feature_set.features}
    present = [name for name in header if name in wanted]
    required = [options.source_column(feature_set.query_id.name), options.source_column(feature_set.label.name)]
    missing = [name for name in required if name not in header]
    if missing:
        raise ValueError(f"{source}: header lacks required column(s) {missing}; header is {header}")
    invalid: list[dict] = []

    def on_invalid(row) -> str:
        line = row.number if row.number is not None else -1
        invalid.append(
            dead_letter_entry(
                COLUMN_COUNT,
                source,
                line,
                f"expected {row.expected_columns} columns, found {row.actual_columns}",
                row.text,
            )
        )
        return "skip"

    table = pcsv.read_csv(
        pa.BufferReader(data),
        read_options=pcsv.ReadOptions(use_threads=False, encoding="utf8"),
        parse_options=pcsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid),
        convert_options=pcsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            include_columns=present,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    lines = _csv_data_lines(data, table.num_rows, invalid)
    columns = {wanted[name]: table.column(name).combine_chunks() for name in present}
    return RawFile(columns, table.num_rows, lines, invalid, lambda i: {n: table.column(n)[i].as_py() for n in present})


def _csv_data_lines(data: bytes, num_rows: int, invalid: list[dict]) -> np.ndarray:
    """Physical line (1-based) of each parsed data row: not the header, blank or invalid lines.

    pyarrow numbers invalid rows among the non-blank lines; their entries are corrected to
    physical lines in place. Exact unless a quoted cell spans lines.
    """
    buffer = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(buffer == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(buffer)]))
    lengths = ends - starts
    # A line holding only '\r' is blank too.
    blank = (lengths == 0) | ((lengths == 1) & (buffer[np.minimum(starts, max(len(buffer) - 1, 0))] == 13))
    non_blank = np.flatnonzero(~blank) + 1  # 1-based physical numbers of non-blank lines
    invalid_lines = []
    for entry in invalid:
        if 1 <= entry["line"] <= len(non_blank):
            entry["line"] = int(non_blank[entry["line"] - 1])
        invalid_lines.append(entry["line"])
    candidate = non_blank[non_blank > non_blank[0]] if len(non_blank) else non_blank  # not the header
    if invalid_lines:
        candidate = np.setdiff1d(candidate, np.asarray(invalid_lines), assume_unique=True)
    if len(candidate) < num_rows:  # quoted multi-line cells: fall back to row numbers
        return np.arange(2, num_rows + 2)
    return candidate[:num_rows]


def _stringify(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | list | dict):
        return json.dumps(value)  # not a number: typed as a bad value, with this text in the message
    return repr(value) if isinstance(value, float) else str(value)


def read_jsonl(data: bytes, source: str, options: FormatOptions, feature_set: FeatureSet) -> RawFile:
    data = maybe_gunzip(data)
    wanted = {options.source_column(f.name): f.name for f in feature_set.features}
    values: dict[str, list] = {name: [] for name in wanted.values()}
    lines: list[int] = []
    dead: list[dict] = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            dead.append(dead_letter_entry(UNPARSEABLE_LINE, source, number, f"invalid JSON: {error}", line.decode()))
            continue
        if not isinstance(record, dict):
            dead.append(dead_letter_entry(UNPARSEABLE_LINE, source, number, "not a JSON object", line.decode()))
            continue
        lines.append(number)
        for key, name in wanted.items():
            values[name].append(_stringify(record.get(key)))
    columns = {name: pa.array(column, pa.string()) for name, column in values.items()}
    return RawFile(
        columns, len(lines), np.asarray(lines, np.int64), dead, lambda i: {n: c[i] for n, c in values.items()}
    )


def read_parquet(data: bytes, source: str, options: FormatOptions, feature_set: FeatureSet) -> RawFile:
    table = pq.read_table(pa.BufferReader(data))
    wanted = {options.source_column(f.name): f.name for f in feature_set.features}
    present = [name for name in table.column_names if name in wanted]
    columns = {wanted[name]: table.column(name).combine_chunks() for name in present}
    rows = np.arange(1, table.num_rows + 1)
    return RawFile(
        columns, table.num_rows, rows, [], lambda i: {n: _stringify(table.column(n)[i].as_py()) for n in present}
    )


def read_letor(data: bytes, source: str, options: FormatOptions, feature_set: FeatureSet) -> RawFile:
    """SVMlight/LETOR: ``label qid:Q idx:val ... [# comment]``; an absent index is a missing value."""
    data = maybe_gunzip(data)
    index_to_name = options.letor_map(feature_set)
    label = feature_set.label.name
    query_id = feature_set.query_id.name
    doc_id = feature_set.single(Role.DOC_ID)
    names = [label, query_id, *dict.fromkeys(index_to_name.values())]
    if doc_id is not None:
        names.append(doc_id.name)
    values: dict[str, list] = {name: [] for name in names}
    lines: list[int] = []
    dead: list[dict] = []
    texts: list[str] = []
    for number, raw_line in enumerate(data.decode("utf-8").splitlines(), start=1):
        body, _, comment = raw_line.partition("#")
        tokens = body.split()
        if not tokens:
            continue
        row = {label: tokens[0]}
        problem = None
        for token in tokens[1:]:
            key, sep, value = token.partition(":")
            if not sep or not key:
                problem = f"malformed token '{token}' (expected index:value)"
                break
            if key == "qid":
                row[query_id] = value
            elif key in index_to_name:
                row[index_to_name[key]] = value
        if problem:
            dead.append(dead_letter_entry(UNPARSEABLE_LINE, source, number, problem, raw_line))
            continue
        if doc_id is not None:
            match = _DOCID_COMMENT.search(comment)
            if match:
                row[doc_id.name] = match.group(1)
        lines.append(number)
        texts.append(raw_line)
        for name, column in values.items():
            column.append(row.get(name))
    columns = {name: pa.array(column, pa.string()) for name, column in values.items()}
    return RawFile(columns, len(lines), np.asarray(lines, np.int64), dead, lambda i: texts[i])


READERS = {"csv": read_csv, "jsonl": read_jsonl, "parquet": read_parquet, "letor": read_letor}


def read_flat_file(data: bytes, source: str, fmt: str, options: FormatOptions, feature_set: FeatureSet) -> RawFile:
    return READERS[fmt](data, source, options, feature_set)
