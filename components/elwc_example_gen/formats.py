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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from components.elwc_example_gen.columns import COLUMN_COUNT, UNPARSEABLE_LINE
from components.elwc_example_gen.rows import MISSING_TOKENS
from components.elwc_example_gen.sources import blank_undecodable_lines
from modules.features import Dtype, FeatureSet, Role

_MISSING_TEXT = pa.array(sorted(MISSING_TOKENS), pa.string())

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
    # A truncated or corrupt compressed file: "fail" the run naming it, or "dead_letter" it whole.
    on_corrupt_file: str = "fail"
    # Text inputs (LETOR) are parsed in chunks of about this many bytes.
    chunk_bytes: int = 32 << 20

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
    data, undecodable = blank_undecodable_lines(maybe_gunzip(data), source)
    if undecodable and undecodable[0]["line"] == 1:
        raise ValueError(f"{source}: the header line is not valid UTF-8: {undecodable[0]['detail']}")
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
    return RawFile(
        columns,
        table.num_rows,
        lines,
        invalid + undecodable,
        lambda i: {n: table.column(n)[i].as_py() for n in present},
    )


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
    data, dead = blank_undecodable_lines(maybe_gunzip(data), source)
    wanted = {options.source_column(f.name): f.name for f in feature_set.features}
    values: dict[str, list] = {name: [] for name in wanted.values()}
    lines: list[int] = []
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


_LETOR_QID = r"(?s)^[^#]*\sqid:(?P<qid>[^\s#]*)"
_LETOR_DOCID = r"docid\s*=\s*(?P<docid>\S+)"


def letor_lines(data: bytes) -> tuple[pa.Array, np.ndarray]:
    """(every physical line as a string array, trailing newline kept; each line's index)."""
    buffer = np.frombuffer(data, np.uint8)
    starts = np.concatenate(([0], np.flatnonzero(buffer == 10) + 1))
    if len(starts) > 1 and starts[-1] == len(buffer):
        starts = starts[:-1]
    if not len(buffer):
        starts = starts[:0]
    offsets = np.append(starts, len(buffer)).astype(np.int32)
    lines = pa.Array.from_buffers(pa.string(), len(starts), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return lines, np.arange(len(starts))


def letor_query_ids(lines: pa.Array) -> pa.Array:
    """The query id of each LETOR line (its last ``qid:`` token before any ``#``); null where absent."""
    found = pc.extract_regex(lines, _LETOR_QID)
    return pc.struct_field(found, [0])


def read_letor(
    data: bytes, source: str, options: FormatOptions, feature_set: FeatureSet, first_line: int = 1
) -> RawFile:
    """SVMlight/LETOR ``label qid:Q idx:val ... [# comment]``, column-wise (pyarrow + numpy).

    An absent index is a missing value; a ``docid = D`` comment fills the ``role:doc_id``
    feature; a token without ``:`` (or with an empty index) sets the line aside. Feature
    values are split and parsed for the whole chunk at once; a feature whose values do not
    all parse as finite numbers is typed from its text, value by value (:mod:`columns`),
    so that each bad row is named exactly.
    """
    data, dead = blank_undecodable_lines(maybe_gunzip(data), source, first_line)
    index_to_name = options.letor_map(feature_set)
    label = feature_set.label.name
    query_id = feature_set.query_id.name
    doc_id = feature_set.single(Role.DOC_ID)
    names = list(dict.fromkeys(index_to_name.values()))
    lines, _ = letor_lines(data)
    has_comments = b"#" in data
    if has_comments:
        parts = pc.extract_regex(lines, r"(?s)^(?P<body>[^#]*)(?:#(?P<comment>.*))?$")
        body, comment = pc.struct_field(parts, [0]), pc.struct_field(parts, [1])
    else:
        body, comment = lines, None
    body = pc.utf8_trim_whitespace(body)
    blank = pc.equal(pc.binary_length(body), 0).to_numpy(zero_copy_only=False)
    # A blank line would split into one empty token: give it none.
    tokens = pc.utf8_split_whitespace(pc.if_else(pa.array(blank), pa.scalar(None, pa.string()), body))
    counts = pc.list_value_length(tokens).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(tokens)
    token_offsets = np.concatenate(([0], np.cumsum(counts)))
    nonempty = counts > 0
    # Tokens after the label: index:value (qid:Q too).
    is_first = np.zeros(len(flat), bool)
    is_first[token_offsets[:-1][nonempty]] = True
    rest = flat.filter(pa.array(~is_first))
    rest_line = np.repeat(np.arange(len(counts)), np.maximum(counts - 1, 0))
    colon = pc.find_substring(rest, ":").to_numpy(zero_copy_only=False)
    malformed = colon <= 0
    bad_line = np.zeros(len(counts), bool)
    if malformed.any():
        positions = np.flatnonzero(malformed)
        first_bad = {}
        for position in positions.tolist():
            first_bad.setdefault(int(rest_line[position]), position)
        text = lines.to_pylist() if first_bad else []
        for line_index, position in sorted(first_bad.items()):
            bad_line[line_index] = True
            token = rest[position].as_py()
            problem = f"malformed token '{token}' (expected index:value)"
            raw = text[line_index].rstrip("\r\n")
            dead.append(dead_letter_entry(UNPARSEABLE_LINE, source, first_line + line_index, problem, raw))
    good_lines = np.flatnonzero(nonempty & ~bad_line)
    row_of_line = np.full(len(counts), -1, np.int64)
    row_of_line[good_lines] = np.arange(len(good_lines))
    num_rows = len(good_lines)

    keep = ~malformed & (row_of_line[rest_line] >= 0)
    pairs = pc.split_pattern(rest.filter(pa.array(keep)), ":", max_splits=1)
    pair_values = pc.list_flatten(pairs)
    keys = pair_values.take(pa.array(np.arange(0, len(pair_values), 2)))
    values = pair_values.take(pa.array(np.arange(1, len(pair_values), 2)))
    rows = row_of_line[rest_line[keep]]
    column_of_key = {key: names.index(name) for key, name in index_to_name.items()}
    key_list = list(column_of_key)
    found = pc.index_in(keys, value_set=pa.array(key_list, pa.string()))
    mapped = ~found.is_null().to_numpy(zero_copy_only=False)
    key_index = found.fill_null(0).to_numpy(zero_copy_only=False)
    column = np.asarray([column_of_key[k] for k in key_list] or [0], np.int64)[key_index[mapped]]
    rows, values = rows[mapped], values.filter(pa.array(mapped))
    # Which token (index into ``values``) gives each (row, feature); the last one wins, as in a dict.
    token_of = np.full((num_rows, len(names)), -1, np.int64)
    token_of[rows, column] = np.arange(len(rows))

    columns: dict[str, pa.Array] = {}
    columns[label] = flat.take(pa.array(token_offsets[:-1][good_lines]))
    columns[query_id] = letor_query_ids(lines.take(pa.array(good_lines)))
    if doc_id is not None:
        if comment is not None:
            columns[doc_id.name] = pc.struct_field(
                pc.extract_regex(comment.take(pa.array(good_lines)), _LETOR_DOCID), [0]
            )
        else:
            columns[doc_id.name] = pa.nulls(num_rows, pa.string())
    numbers = _letor_numbers(values)
    for j, name in enumerate(names):
        positions = token_of[:, j]
        absent = positions < 0
        feature = feature_set[name] if name in {f.name for f in feature_set.features} else None
        if numbers is not None and feature is not None and feature.dtype != Dtype.BYTES:
            typed = np.append(numbers, np.nan)[np.where(absent, len(numbers), positions)]
            finite = np.isfinite(typed) | np.isnan(typed)
            integral = feature.dtype != Dtype.INT or bool(np.all(np.isnan(typed) | (np.floor(typed) == typed)))
            if finite.all() and integral:
                columns[name] = pa.array(typed, pa.float64(), mask=absent | np.isnan(typed))
                continue
        columns[name] = values.take(pa.array(positions, mask=absent))
    line_numbers = (first_line + good_lines).astype(np.int64)
    good_text = lines.take(pa.array(good_lines))
    return RawFile(columns, num_rows, line_numbers, dead, lambda i: good_text[i].as_py().rstrip("\r\n"))


def _letor_numbers(values: pa.Array) -> np.ndarray | None:
    """All values as float64 (NaN where missing), or None if any does not parse as a number."""
    missing = pc.is_in(values, value_set=_MISSING_TEXT)
    try:
        numbers = pc.if_else(missing, pa.scalar(None, pa.string()), values).cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return numbers.to_numpy(zero_copy_only=False)


def read_query_ids(data: bytes, source: str, fmt: str, options: FormatOptions, feature_set: FeatureSet) -> pa.Array:
    """The raw query id of every row of a chunk (CSV, Parquet, LETOR), cheaply: only that column is parsed."""
    if fmt == "letor":
        data, _ = blank_undecodable_lines(maybe_gunzip(data), source)
        return letor_query_ids(letor_lines(data)[0])
    name = options.source_column(feature_set.query_id.name)
    if fmt == "parquet":
        table = pq.read_table(pa.BufferReader(data))
        return table.column(name).combine_chunks() if name in table.column_names else pa.nulls(table.num_rows)
    single = dataclasses.replace(options, columns={feature_set.query_id.name: name})
    only_query = FeatureSet((feature_set.query_id, feature_set.label))
    return read_csv(data, source, single, only_query).columns.get(feature_set.query_id.name, pa.nulls(0))


READERS = {"csv": read_csv, "jsonl": read_jsonl, "parquet": read_parquet, "letor": read_letor}


def read_flat_file(data: bytes, source: str, fmt: str, options: FormatOptions, feature_set: FeatureSet) -> RawFile:
    return READERS[fmt](data, source, options, feature_set)
