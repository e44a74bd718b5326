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
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
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
    # 8 MB kept ExampleGen's peak ~370 MB lower than 16 MB, for ~3 % more CPU time.
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
    data, dead = blank_undecodable_lines(maybe_gunzip(data), source, first_line)
    wanted = {options.source_column(f.name): f.name for f in feature_set.features}
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
_QID_TAG = np.frombuffer(b"qid:", "<u4")[0]


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
            delta = np.zeros(len(buffer) + 1, np.int8)
            delta[hashes[first]] += 1
            delta[ends[line_of_hash[first]]] -= 1
            body[np.cumsum(delta[:-1], dtype=np.int8) > 0] = 32  # the comment becomes spaces
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
        found = []
        for shift in range(4):  # "qid:" at any alignment, compared 4 bytes at a time
            usable = (len(body) - shift) // 4 * 4
            words = body[shift : shift + usable].view("<u4")
            found.append(np.flatnonzero(words == _QID_TAG) * 4 + shift)
        at = np.sort(np.concatenate(found))
        at = at[(at > 0) & _IS_WHITESPACE[body[np.maximum(at - 1, 0)]]]  # a token of its own, not the label
        line = np.searchsorted(self.starts, at, side="right") - 1
        last = np.concatenate((np.diff(line) != 0, [True])) if len(at) else at.astype(bool)
        at, line = at[last] + 4, line[last]
        space = np.append(np.flatnonzero(_IS_WHITESPACE[body]), len(body))
        end = np.minimum(space[np.searchsorted(space, at)], self.ends[line])
        start = np.zeros(len(self.starts), np.int64)
        length = np.zeros(len(self.starts), np.int64)
        valid = np.zeros(len(self.starts), bool)
        start[line], length[line], valid[line] = at, end - at, True
        return _gather(body, start, length, valid)

    def raw_line(self, index: int) -> str:
        return bytes(self.buffer[self.starts[index] : self.ends[index]]).decode().rstrip("\r")


_IS_WHITESPACE = np.zeros(256, bool)
_IS_WHITESPACE[list(b" \t\n\r\x0b\x0c")] = True


def _gather(buffer: np.ndarray, start: np.ndarray, length: np.ndarray, valid: np.ndarray) -> pa.Array:
    """String array of ``buffer[start[i]:start[i] + length[i]]`` (null where not ``valid``)."""
    length = np.where(valid, length, 0)
    offsets = np.zeros(len(length) + 1, np.int64)
    np.cumsum(length, out=offsets[1:])
    index = np.repeat(start - offsets[:-1], length) + np.arange(offsets[-1])
    data = buffer[index] if len(index) else np.zeros(0, np.uint8)
    validity = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(
        pa.string(), len(length), [validity, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)]
    )


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
    lines = text.lines
    body = pc.utf8_trim_whitespace(lines)
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
    columns[query_id] = text.query_ids().take(pa.array(good_lines))
    if doc_id is not None:
        columns[doc_id.name] = pc.struct_field(pc.extract_regex(text.comments(good_lines), _LETOR_DOCID), [0])
    numbers = _letor_numbers(values)
    if numbers is not None:
        numbers = np.append(numbers, np.nan)  # index len(values): an absent value
    for j, name in enumerate(names):
        positions = token_of[:, j]
        absent = positions < 0
        feature = feature_set[name] if name in {f.name for f in feature_set.features} else None
        if numbers is not None and feature is not None and feature.dtype != Dtype.BYTES:
            typed = numbers[np.where(absent, len(numbers) - 1, positions)]
            finite = np.isfinite(typed) | np.isnan(typed)
            integral = feature.dtype != Dtype.INT or bool(np.all(np.isnan(typed) | (np.floor(typed) == typed)))
            if finite.all() and integral:
                columns[name] = pa.array(typed, pa.float64(), mask=absent | np.isnan(typed))
                continue
        columns[name] = values.take(pa.array(positions, mask=absent))
    line_numbers = (first_line + good_lines).astype(np.int64)
    return RawFile(columns, num_rows, line_numbers, dead, lambda i: text.raw_line(int(good_lines[i])))


def _letor_numbers(values: pa.Array) -> np.ndarray | None:
    """All values as float64 (NaN where missing), or None if any does not parse as a number."""
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
