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
import math
import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pj
import pyarrow.parquet as pq

from components.elwc_example_gen.columns import COLUMN_COUNT, UNPARSEABLE_LINE
from components.elwc_example_gen.rows import MISSING_TOKENS
from components.elwc_example_gen.sources import DEFAULT_CHUNK_BYTES, CsvQuoting, blank_undecodable_lines
from modules.features import Dtype, FeatureSet, Role

_MISSING_TEXT = pa.array(sorted(MISSING_TOKENS), pa.string())

FORMATS = ("auto", "csv", "jsonl", "parquet", "letor", "elwc")
EXTENSIONS = {
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
    # Inputs are read and parsed in chunks of about this many bytes (text: whole lines; Parquet: rows).
    # Two chunks are parsed at once, each needing ~20x its size while parsed (MSLR-shaped LETOR):
    # 8 MB kept ExampleGen's peak ~370 MB lower than 16 MB, for ~3 % more CPU time; 4 MB with
    # pyarrow on the system allocator (``ltr run`` sets it) ~180 MB lower than 8 MB, for the same
    # CPU time (benchmarks/example_gen.py --chunk-bytes N).
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    # Nested list exports (JSON Lines / Parquet, one row per list): the field holding the list's
    # documents as an array of structs (see nested.py). None: one row per (query, document).
    documents_field: str | None = None

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
    for extension, fmt in EXTENSIONS.items():
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
    extra_stats: dict = dataclasses.field(default_factory=dict)  # merged into the run's statistics


def dead_letter_entry(reason: str, source: str, line: int, detail: str, raw: object = None) -> dict:
    entry = {"reason": reason, "source": source, "line": int(line), "detail": detail}
    if raw is not None:
        entry["raw"] = raw
    return entry


# A dead-letter entry keeps at most this much of its row's raw values (JSON characters).
MAX_DEAD_LETTER_RAW_CHARS = 2000


def row_dead_letter(reason: str, source: str, line: int, detail: str, raw_rows, index: int) -> dict:
    """The entry for row ``index`` of a file, with its raw values (truncated) where the reader kept them."""
    entry = dead_letter_entry(reason, source, line, detail)
    if raw_rows is not None:
        raw = raw_rows(index)
        text = json.dumps(raw, default=str)
        entry["raw"] = raw if len(text) <= MAX_DEAD_LETTER_RAW_CHARS else text[:MAX_DEAD_LETTER_RAW_CHARS] + "..."
    return entry


def typed_dead_letter(raw: RawFile, bad: list, source: str) -> list[dict]:
    """The reader's own dead letter plus the rows typing set aside (``bad[i]``: (reason, detail) or None)."""
    dead = list(raw.dead_letter)
    for index, problem in enumerate(bad):
        if problem is not None:
            dead.append(row_dead_letter(problem[0], source, int(raw.lines[index]), problem[1], raw.raw_rows, index))
    return dead


def read_csv(data: bytes, source: str, options: FormatOptions, feature_set: FeatureSet, first_line: int = 1) -> RawFile:
    """A CSV file, or a chunk of one led by its header line (``first_line``: the file line of the chunk's line 1)."""
    delimiter = csv_delimiter(source, options)
    quoting = CsvQuoting(ord(delimiter), source)
    data, undecodable = blank_undecodable_lines(maybe_gunzip(data), source, first_line, quoting)
    if undecodable and undecodable[0]["line"] == first_line:
        raise ValueError(f"{source}: the header line is not valid UTF-8: {undecodable[0]['detail']}")
    quoted = b'"' in data
    if quoted:  # a quoted value may hold newlines: records end only outside quoted fields
        quoting.check_closed(data, first_line)
    header_line = data.split(b"\n", 1)[0].decode("utf-8-sig").rstrip("\r")
    header = next(csv.reader([header_line], delimiter=delimiter), [])
    if not header:
        return RawFile({}, 0, np.zeros(0, np.int64), [])
    wanted = {options.source_column(f.name): f.name for f in feature_set.features}
    present = [name for name in header if name in wanted]
    # The label is required unless it is made from events (events.py reads impressions without it).
    keys = (feature_set.query_id, feature_set.single(Role.LABEL))
    required = [options.source_column(f.name) for f in keys if f is not None]
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
        # newlines_in_values: pyarrow cuts its own blocks quote-aware too (else a quoted newline
        # at one of its 1 MB block boundaries breaks the read).
        parse_options=pcsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid, newlines_in_values=quoted),
        convert_options=pcsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            include_columns=present,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    ends = quoting.record_ends(data) if quoted else None
    lines = _csv_data_lines(data, table.num_rows, invalid, ends) + (first_line - 1)
    for entry in invalid:
        entry["line"] += first_line - 1
    columns = {wanted[name]: table.column(name).combine_chunks() for name in present}
    return RawFile(
        columns,
        table.num_rows,
        lines,
        invalid + undecodable,
        lambda i: {n: table.column(n)[i].as_py() for n in present},
    )


def _csv_data_lines(data: bytes, num_rows: int, invalid: list[dict], ends: np.ndarray | None = None) -> np.ndarray:
    """Physical line (1-based) of each parsed data row (the line its record starts on): not the header,
    blank or invalid records.

    ``ends``: the newlines that end records (default: every newline; CSV with quoted values:
    ``CsvQuoting.record_ends``). pyarrow numbers invalid rows among the non-blank records; their
    entries are corrected to physical lines in place.
    """
    buffer = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(buffer == 10)
    ends = newlines if ends is None else ends
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [len(buffer)]))
    lengths = stops - starts
    # A record holding only '\r' is blank too.
    blank = (lengths == 0) | ((lengths == 1) & (buffer[np.minimum(starts, max(len(buffer) - 1, 0))] == 13))
    start_lines = np.searchsorted(newlines, starts) + 1  # the physical line each record starts on
    non_blank = start_lines[~blank]
    invalid_lines = []
    for entry in invalid:
        if 1 <= entry["line"] <= len(non_blank):
            entry["line"] = int(non_blank[entry["line"] - 1])
        invalid_lines.append(entry["line"])
    candidate = non_blank[1:]  # not the header
    if invalid_lines:
        candidate = np.setdiff1d(candidate, np.asarray(invalid_lines), assume_unique=True)
    if len(candidate) < num_rows:  # line ends pyarrow reads but this does not (a lone '\r'): row numbers
        return np.arange(2, num_rows + 2)
    return candidate[:num_rows]


def csv_delimiter(source: str, options: FormatOptions) -> str:
    """The configured delimiter, else tab for ``.tsv`` files and ',' otherwise."""
    return options.csv_delimiter or ("\t" if source.lower().removesuffix(".gz").endswith(".tsv") else ",")


def _stringify(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | list | dict):
        return json.dumps(value)  # not a number: typed as a bad value, with this text in the message
    return repr(value) if isinstance(value, float) else str(value)


def read_jsonl(
    data: bytes, source: str, options: FormatOptions, feature_set: FeatureSet, first_line: int = 1
) -> RawFile:
    """JSON Lines: one object per line; a line that is not one is set aside, named by its line.

    Column-wise with ``pyarrow.json`` when the whole chunk parses and every wanted key holds
    values the line-by-line reader reads the same way (:func:`_jsonl_columns`); line by line
    with ``json.loads`` otherwise, which names each bad line.
    """
    data, dead = blank_undecodable_lines(maybe_gunzip(data), source, first_line)
    wanted = {options.source_column(f.name): f.name for f in feature_set.features}
    fast = _jsonl_columns(data, wanted, feature_set)
    if fast is not None:
        columns, lines = fast
        return RawFile(
            columns,
            len(lines),
            lines + first_line,
            dead,
            lambda i: {name: _stringify(column[i].as_py()) for name, column in columns.items()},
        )
    values: dict[str, list] = {name: [] for name in wanted.values()}
    lines: list[int] = []
    for number, line in enumerate(data.splitlines(), start=first_line):
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


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_EXACT_INT = 2**53  # integers up to this size are the same as int64 and as float64


def _jsonl_columns(data: bytes, wanted: dict[str, str], feature_set: FeatureSet) -> tuple | None:
    """(wanted columns, 0-based line of each row) read by ``pyarrow.json``, or None where it would differ.

    The columns keep pyarrow's types (string, int64, double, null), typed afterwards as Parquet
    columns are; a value reads the same as ``json.loads`` + :func:`_stringify` would give it.
    None (the line-by-line reader decides) when the chunk does not parse as one object per
    non-blank line, or a wanted key holds booleans, arrays, objects, date-like strings (pyarrow
    makes them timestamps), integers beyond 2**53, or numbers with a fraction for a BYTES
    feature (whose text would differ). One difference is left: an integer in a key that also
    holds fractions is a float64 here, so a dead-letter entry's raw value shows ``2.0`` where the
    line reader shows ``2`` (the typed value is the same).
    """
    if data.count(b"\r") != data.count(b"\r\n") or _SURROGATE_ESCAPE.search(data):
        return None  # a lone CR splits lines for the line reader; lone surrogates read differently
    try:
        table = pj.read_json(
            pa.BufferReader(data),
            read_options=pj.ReadOptions(use_threads=False),
            parse_options=pj.ParseOptions(newlines_in_values=False, unexpected_field_behavior="infer"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    buffer = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(buffer == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(buffer)]))
    solid = np.concatenate(([0], np.cumsum(~_IS_WHITESPACE[buffer], dtype=np.int64)))
    lines = np.flatnonzero(solid[ends] > solid[starts])  # lines with something but whitespace
    if table.num_rows != len(lines):
        return None
    columns = {}
    for key, name in wanted.items():
        if key not in table.column_names:  # in no line: all missing, as the line reader has it
            columns[name] = pa.nulls(table.num_rows, pa.string())
            continue
        column = table.column(key).combine_chunks()
        kind = column.type
        if pa.types.is_int64(kind) or (pa.types.is_floating(kind) and feature_set[name].dtype != Dtype.BYTES):
            magnitude = pc.max(pc.abs(column)).as_py()
            if magnitude is not None and magnitude >= _EXACT_INT and not math.isinf(magnitude):
                return None
        elif not (pa.types.is_string(kind) or pa.types.is_null(kind)):
            return None
        columns[name] = column
    return columns, lines


def parquet_chunks(
    handle, source: str, options: FormatOptions, feature_set: FeatureSet
) -> Iterator[tuple[int, pa.Table]]:
    """(number of the first row, rows) of a Parquet file, about ``options.chunk_bytes`` of rows at a time.

    ``handle``: a seekable binary file. Only the schema's columns are read. A GZIP-compressed
    file (``.parquet.gz``) is decompressed into memory first: Parquet needs random access.
    """
    magic = handle.read(2)
    handle.seek(0)
    if magic == b"\x1f\x8b":
        from components.elwc_example_gen.sources import read_all

        handle = pa.BufferReader(read_all(handle, source))
    parquet = pq.ParquetFile(handle)
    wanted = {options.source_column(f.name) for f in feature_set.features}
    if options.documents_field:  # nested lists: the documents' struct column and every top-level field
        wanted = set(parquet.schema_arrow.names)
    columns = [name for name in parquet.schema_arrow.names if name in wanted]
    metadata = parquet.metadata
    total_bytes = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    rows = max(1, int(options.chunk_bytes * metadata.num_rows / max(total_bytes, 1)))
    first = 1
    for batch in parquet.iter_batches(batch_size=rows, columns=columns, use_threads=False):
        yield first, pa.Table.from_batches([batch])
        first += batch.num_rows
    if first == 1:  # no rows: still one (empty) chunk, so the file is counted
        yield 1, parquet.schema_arrow.empty_table().select(columns)


def read_parquet(
    data: bytes | pa.Table, source: str, options: FormatOptions, feature_set: FeatureSet, first_line: int = 1
) -> RawFile:
    """A Parquet file's bytes, or a chunk of its rows (``first_line``: the number of its first row)."""
    table = data if isinstance(data, pa.Table) else pq.read_table(pa.BufferReader(data))
    wanted = {options.source_column(f.name): f.name for f in feature_set.features}
    present = [name for name in table.column_names if name in wanted]
    columns = {wanted[name]: table.column(name).combine_chunks() for name in present}
    rows = np.arange(first_line, first_line + table.num_rows)
    return RawFile(
        columns, table.num_rows, rows, [], lambda i: {n: _stringify(table.column(n)[i].as_py()) for n in present}
    )


_LETOR_DOCID = r"docid\s*=\s*(?P<docid>\S+)"


@dataclasses.dataclass
class LetorText:
    """One chunk of LETOR text split into lines, its ``#`` comments blanked out (numpy, no per-line Python).

    ``lines[i]`` is physical line i without its comment (the newline kept); ``comments`` maps the
    lines that have one to their comment text.
    """

    buffer: np.ndarray
    starts: np.ndarray
    ends: np.ndarray  # exclusive, before the newline
    lines: pa.Array
    body: np.ndarray  # the buffer with comments blanked
    hashes: np.ndarray  # positions of '#'

    @classmethod
    def parse(cls, data: bytes) -> LetorText:
        buffer = np.frombuffer(data, np.uint8)
        newlines = np.flatnonzero(buffer == 10)
        starts = np.concatenate(([0], newlines + 1))
        ends = np.concatenate((newlines, [len(buffer)]))
        if len(starts) and starts[-1] == len(buffer):  # nothing after the last newline
            starts, ends = starts[:-1], ends[:-1]
        hashes = np.flatnonzero(buffer == 35)
        body = buffer
        if len(hashes):
            body = buffer.copy()
            line_of_hash = np.searchsorted(starts, hashes, side="right") - 1
            first = np.concatenate(([True], np.diff(line_of_hash) != 0))
            begin = hashes[first]
            length = ends[line_of_hash[first]] - begin
            offsets = np.zeros(len(begin) + 1, np.int64)
            np.cumsum(length, out=offsets[1:])
            # Each comment (from its line's first '#' to the line end) becomes spaces.
            body[np.repeat(begin - offsets[:-1], length) + np.arange(offsets[-1])] = 32
        offsets = np.append(starts, len(buffer)).astype(np.int32)
        lines = pa.Array.from_buffers(pa.string(), len(starts), [None, pa.py_buffer(offsets), pa.py_buffer(body)])
        return cls(buffer, starts, ends, lines, body, hashes)

    def comments(self, rows: np.ndarray) -> pa.Array:
        """The comment (after the first ``#``) of each line in ``rows``; null where it has none."""
        if not len(self.hashes):
            return pa.nulls(len(rows), pa.string())
        line_of_hash = np.searchsorted(self.starts, self.hashes, side="right") - 1
        first = np.concatenate(([True], np.diff(line_of_hash) != 0))
        begin = np.full(len(self.starts), -1, np.int64)
        begin[line_of_hash[first]] = self.hashes[first] + 1
        begin, end = begin[rows], self.ends[rows]
        has = begin >= 0
        lengths = np.where(has, end - begin, 0)
        return _gather(self.buffer, np.where(has, begin, 0), lengths, has)

    def query_ids(self) -> pa.Array:
        """Each line's query id: its last ``qid:`` token outside the comment (null where none)."""
        body = self.body
        at = np.flatnonzero(body[: max(len(body) - 3, 0)] == 113)  # every 'q' that could start "qid:"
        at = at[(body[at + 1] == 105) & (body[at + 2] == 100) & (body[at + 3] == 58)]
        at = at[(at > 0) & _IS_WHITESPACE[body[np.maximum(at - 1, 0)]]]  # a token of its own, not the label
        line = np.searchsorted(self.starts, at, side="right") - 1
        last = np.concatenate((np.diff(line) != 0, [True])) if len(at) else at.astype(bool)
        at, line = at[last] + 4, line[last]
        end = _token_ends(body, at, self.ends[line])
        start = np.zeros(len(self.starts), np.int64)
        length = np.zeros(len(self.starts), np.int64)
        valid = np.zeros(len(self.starts), bool)
        start[line], length[line], valid[line] = at, end - at, True
        return _gather(body, start, length, valid)

    def raw_line(self, index: int) -> str:
        return bytes(self.buffer[self.starts[index] : self.ends[index]]).decode().rstrip("\r")


_IS_WHITESPACE = np.zeros(256, bool)
_IS_WHITESPACE[list(b" \t\n\r\x0b\x0c")] = True
_TOKEN_WINDOW = 64


def _token_ends(body: np.ndarray, start: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """For each token starting at ``start[i]``: where it ends (the first whitespace, at most ``limit[i]``)."""
    window = start[:, None] + np.arange(_TOKEN_WINDOW)
    blank = _IS_WHITESPACE[body[np.minimum(window, len(body) - 1)]] | (window >= limit[:, None])
    found = blank.any(axis=1)
    end = np.where(found, start + blank.argmax(axis=1), 0)
    if not found.all():  # a token longer than the window: the next whitespace, searched in the whole chunk
        space = np.append(np.flatnonzero(_IS_WHITESPACE[body]), len(body))
        long = ~found
        end[long] = np.minimum(space[np.searchsorted(space, start[long])], limit[long])
    return end


def _gather(buffer: np.ndarray, start: np.ndarray, length: np.ndarray, valid: np.ndarray) -> pa.Array:
    """String array of ``buffer[start[i]:start[i] + length[i]]`` (null where not ``valid``)."""
    length = np.where(valid, length, 0).astype(np.int32)  # a chunk is far below 2 GB: int32 offsets
    offsets = np.zeros(len(length) + 1, np.int32)
    np.cumsum(length, out=offsets[1:])
    index = np.repeat((start - offsets[:-1]).astype(np.int32), length)
    index += np.arange(offsets[-1], dtype=np.int32)
    data = buffer[index] if len(index) else np.zeros(0, np.uint8)
    validity = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.string(), len(length), [validity, pa.py_buffer(offsets), pa.py_buffer(data)])


def _letor_tokens(text: LetorText, column_of_key: dict[str, int], source: str, first_line: int, dead: list) -> tuple:
    """(lines that are rows, their labels, then per mapped ``index:value`` token: row, column, value text).

    Every line, whatever its bytes: split with ``pyarrow.compute``; a line with a malformed token
    is set aside in ``dead``.
    """
    body = pc.utf8_trim_whitespace(text.lines)
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
        for line_index, position in sorted(first_bad.items()):
            bad_line[line_index] = True
            token = rest[position].as_py()
            problem = f"malformed token '{token}' (expected index:value)"
            raw = text.raw_line(line_index)
            dead.append(dead_letter_entry(UNPARSEABLE_LINE, source, first_line + line_index, problem, raw))
    good_lines = np.flatnonzero(nonempty & ~bad_line)
    row_of_line = np.full(len(counts), -1, np.int64)
    row_of_line[good_lines] = np.arange(len(good_lines))

    keep = ~malformed & (row_of_line[rest_line] >= 0)
    pairs = pc.split_pattern(rest.filter(pa.array(keep)), ":", max_splits=1)
    pair_values = pc.list_flatten(pairs)
    keys = pair_values.take(pa.array(np.arange(0, len(pair_values), 2)))
    values = pair_values.take(pa.array(np.arange(1, len(pair_values), 2)))
    rows = row_of_line[rest_line[keep]]
    key_list = list(column_of_key)
    found = pc.index_in(keys, value_set=pa.array(key_list, pa.string()))
    mapped = ~found.is_null().to_numpy(zero_copy_only=False)
    key_index = found.fill_null(0).to_numpy(zero_copy_only=False)
    column = np.asarray([column_of_key[k] for k in key_list] or [0], np.int64)[key_index[mapped]]
    labels = flat.take(pa.array(token_offsets[:-1][good_lines]))
    return good_lines, labels, rows[mapped], column, values.filter(pa.array(mapped))


_MAX_KEY_DIGITS = 9


def _letor_tokens_fast(text: LetorText, column_of_key: dict[str, int]) -> tuple | None:
    """As :func:`_letor_tokens` with numpy on the chunk's bytes (plus each row's query id), or None.

    It covers lines of ASCII tokens ``label idx:value ... qid:Q ...`` whose indices are decimal
    numbers (or ``qid``) and whose tokens each hold one ``:`` with text on both sides, as every
    MSLR, Istella and Yahoo export does; for anything else (a malformed token, a byte outside
    printable ASCII, tab, CR and LF, an index that is not a number) it returns None and the
    general path, which names the bad lines, reads the chunk.
    """
    numeric = {}
    for key, column in column_of_key.items():
        if not key.isascii() or not key.isdigit() or len(key) > _MAX_KEY_DIGITS or (key[0] == "0" and key != "0"):
            return None
        numeric[int(key)] = column
    body = text.body
    if not numeric or not len(body) or body.max() > 126:
        return None
    space = (body == 32) | (body == 10)
    tabs_and_returns = (body == 9) | (body == 13)
    if np.count_nonzero(body < 32) != np.count_nonzero(body == 10) + np.count_nonzero(tabs_and_returns):
        return None  # another control byte: whitespace to pyarrow or not, the general path decides
    space |= tabs_and_returns
    padded = np.ones(len(body) + 2, bool)
    padded[1:-1] = space
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = edges[0::2], edges[1::2]  # a token starts after a space and ends before one
    first_of_line = np.searchsorted(starts, text.starts)  # each line's first token (if it has one)
    counts = np.diff(np.append(first_of_line, len(starts)))
    good_lines = np.flatnonzero(counts > 0)
    labels = first_of_line[good_lines]
    is_rest = np.ones(len(starts), bool)
    is_rest[labels] = False
    label_text = _gather(body, starts[labels], ends[labels] - starts[labels], np.ones(len(labels), bool))
    rest = np.flatnonzero(is_rest)
    token_line = np.repeat(np.arange(len(counts)), np.maximum(counts - 1, 0))
    starts, ends = starts[rest], ends[rest]
    colons = np.flatnonzero(body == 58)
    # One ':' inside each index:value token, none elsewhere, with text on both sides.
    if len(colons) != len(starts) or not np.all((colons > starts) & (colons < ends - 1)):
        return None
    digits = colons - starts
    key = np.zeros(len(starts), np.int64)
    is_number = np.ones(len(starts), bool)
    scale = 1
    for k in range(min(int(digits.max()) if len(digits) else 0, _MAX_KEY_DIGITS)):
        digit = body[np.maximum(colons - 1 - k, 0)] - np.uint8(48)  # a non-digit wraps above 9
        active = digits > k
        is_number &= (digit <= 9) | ~active
        key += (digit * active).astype(np.int64) * scale
        scale *= 10
    is_number &= (digits <= _MAX_KEY_DIGITS) & ((digits == 1) | (body[starts] != 48))  # no leading zero
    qids = np.flatnonzero(~is_number)  # every other index must be "qid"
    is_qid = (digits[qids] == 3) & (body[starts[qids]] == 113) & (body[starts[qids] + 1] == 105)
    if not (is_qid & (body[starts[qids] + 2] == 100)).all():
        return None
    # The query id of a line is its last qid token.
    last = np.append(token_line[qids][1:] != token_line[qids][:-1], True) if len(qids) else qids.astype(bool)
    qid_line = token_line[qids[last]]
    qid_start = colons[qids[last]] + 1
    query_start = np.zeros(len(counts), np.int64)
    query_length = np.zeros(len(counts), np.int64)
    has_query = np.zeros(len(counts), bool)
    query_start[qid_line], query_length[qid_line], has_query[qid_line] = qid_start, ends[qids[last]] - qid_start, True
    query_ids = _gather(body, query_start[good_lines], query_length[good_lines], has_query[good_lines])
    table = np.full(max(numeric) + 2, -1, np.int64)
    table[list(numeric)] = list(numeric.values())
    column = table[np.where(is_number, np.minimum(key, len(table) - 1), len(table) - 1)]
    mapped = np.flatnonzero(column >= 0)
    row_of_line = np.full(len(counts), -1, np.int64)
    row_of_line[good_lines] = np.arange(len(good_lines))
    value_start = colons[mapped] + 1
    values = _gather(body, value_start, ends[mapped] - value_start, np.ones(len(mapped), bool))
    return good_lines, label_text, row_of_line[token_line[mapped]], column[mapped], values, query_ids


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
    text = LetorText.parse(data)
    column_of_key = {key: names.index(name) for key, name in index_to_name.items()}
    tokens = _letor_tokens_fast(text, column_of_key)
    if tokens is None:  # a line the fast path does not cover: token by token in pyarrow
        tokens = _letor_tokens(text, column_of_key, source, first_line, dead)
        tokens += (text.query_ids().take(pa.array(tokens[0])),)
    good_lines, labels, rows, column, values, query_ids = tokens
    num_rows = len(good_lines)
    # Which token (index into ``values``) gives each (row, feature); the last one wins, as in a dict.
    token_of = np.full((len(names), num_rows), -1, np.int64)
    token_of[column, rows] = np.arange(len(rows))

    columns: dict[str, pa.Array] = {}
    columns[label] = labels
    columns[query_id] = query_ids
    if doc_id is not None:
        columns[doc_id.name] = pc.struct_field(pc.extract_regex(text.comments(good_lines), _LETOR_DOCID), [0])
    numbers = _letor_numbers(values)
    if numbers is not None:
        numbers = np.append(numbers, np.nan)  # index len(values): an absent value
        # Every feature's values at once, one row per feature (NaN: absent or missing).
        matrix = numbers[np.where(token_of < 0, len(numbers) - 1, token_of)]
        missing = np.isnan(matrix)
        infinite = np.isinf(matrix).any(axis=1)
    declared = {f.name for f in feature_set.features}
    for j, name in enumerate(names):
        positions = token_of[j]
        absent = positions < 0
        feature = feature_set[name] if name in declared else None
        if numbers is not None and feature is not None and feature.dtype != Dtype.BYTES and not infinite[j]:
            typed = matrix[j]
            integral = feature.dtype != Dtype.INT or bool(np.all(missing[j] | (np.floor(typed) == typed)))
            if integral:
                columns[name] = pa.array(typed, pa.float64(), mask=missing[j])
                continue
        columns[name] = values.take(pa.array(positions, mask=absent))
    line_numbers = (first_line + good_lines).astype(np.int64)
    return RawFile(columns, num_rows, line_numbers, dead, lambda i: text.raw_line(int(good_lines[i])))


def _letor_numbers(values: pa.Array) -> np.ndarray | None:
    """All values as float64 (NaN where missing), or None if any does not parse as a number."""
    try:  # most often every value is a number (or nan): one cast
        return values.cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    missing = pc.is_in(values, value_set=_MISSING_TEXT)
    try:
        numbers = pc.if_else(missing, pa.scalar(None, pa.string()), values).cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return numbers.to_numpy(zero_copy_only=False)


def read_query_ids(
    data: bytes | pa.Table, source: str, fmt: str, options: FormatOptions, feature_set: FeatureSet
) -> pa.Array:
    """The raw query id of every row of a chunk, cheaply: only that column is parsed (LETOR, CSV, Parquet)."""
    if fmt == "letor":
        data, _ = blank_undecodable_lines(maybe_gunzip(data), source)
        return LetorText.parse(data).query_ids()
    name = options.source_column(feature_set.query_id.name)
    if fmt == "parquet":
        table = data if isinstance(data, pa.Table) else pq.read_table(pa.BufferReader(data))
        if name not in table.column_names:
            return pa.nulls(table.num_rows)
        return table.column(name).combine_chunks()
    # The query id and the label (read_csv requires both), under their configured column names.
    only_query = FeatureSet((feature_set.query_id, feature_set.label))
    read = read_csv if fmt == "csv" else read_jsonl
    return read(data, source, options, only_query).columns.get(feature_set.query_id.name, pa.nulls(0))


READERS = {"csv": read_csv, "jsonl": read_jsonl, "parquet": read_parquet, "letor": read_letor}


def read_flat_file(
    data: bytes | pa.Table, source: str, fmt: str, options: FormatOptions, feature_set: FeatureSet, first_line: int = 1
) -> RawFile:
    """One file, or one chunk of it (``first_line``: the file line or row of the chunk's first line or row)."""
    if options.documents_field:  # one row per list, its documents an array of structs (nested.py)
        from components.elwc_example_gen import nested

        return nested.read_lists(data, source, fmt, options, feature_set, first_line)
    return READERS[fmt](data, source, options, feature_set, first_line=first_line)
