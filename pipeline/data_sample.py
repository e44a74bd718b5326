"""The first rows of an input file, in any input format, as raw columns (for ``ltr init`` and preflight).

ExampleGen's readers type whole files by a schema; ``ltr init`` has no schema yet
and preflight only needs the first rows, so this module reads a bounded prefix of
each file with pyarrow (CSV, JSON Lines, Parquet) or line by line (LETOR), or the
first records (ELWC), and returns its columns under their *source* names:

* CSV / JSON Lines / Parquet: the header / keys / columns as they are.
* LETOR: ``label``, ``qid``, ``docid`` (from a ``# docid = D`` comment) and one
  column per feature index (``"1"``, ``"2"``, ...); an absent index is None.
* ELWC: every context and document feature key (context values repeated on each
  document); the list number is the query id where the context has none.

Values are strings (None = missing) except for Parquet and ELWC, whose values keep
their native types; ``numeric`` tells whether a column was natively numeric.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import re

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from components.elwc_example_gen.formats import EXTENSIONS
from components.elwc_example_gen.rows import MISSING_TOKENS

LETOR_LABEL, LETOR_QID, LETOR_DOCID = "label", "qid", "docid"
ELWC_LIST = "__list__"  # ELWC: the record number, the list key when the context has no query id
_DOCID_COMMENT = re.compile(r"docid\s*=\s*(\S+)")
_PREFIX_BYTES = 8 << 20  # at most this much of a text file is read


class SampleError(ValueError):
    """A file cannot be read as its format; the message names the file."""


@dataclasses.dataclass
class Sample:
    """Raw columns of the first rows of one or more files of one format."""

    format: str
    columns: dict[str, list]  # source column name -> values (None = missing)
    num_rows: int = 0
    files: list[str] = dataclasses.field(default_factory=list)
    header: list[str] = dataclasses.field(default_factory=list)  # column names in file order
    numeric: set[str] = dataclasses.field(default_factory=set)  # natively numeric columns (Parquet, ELWC)
    context: set[str] = dataclasses.field(default_factory=set)  # ELWC: features found in the list context

    def extend(self, other: Sample) -> None:
        for name in other.header:
            if name not in self.columns:
                self.columns[name] = [None] * self.num_rows
                self.header.append(name)
        for name, values in self.columns.items():
            values.extend(other.columns.get(name, [None] * other.num_rows))
        self.num_rows += other.num_rows
        self.files.extend(other.files)
        self.numeric |= other.numeric
        self.context |= other.context

    def present(self, name: str) -> bool:
        """Whether the column has at least one non-missing value."""
        return any(not is_missing(v) for v in self.columns.get(name, ()))


def is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() in MISSING_TOKENS
    return isinstance(value, float) and value != value  # NaN


FORMATS = ("csv", "jsonl", "parquet", "letor", "elwc")


def file_format(path: str, configured: str = "auto") -> str | None:
    """The configured format, or the one the file name implies (None if it implies none)."""
    if configured != "auto":
        return configured
    name = path.lower().removesuffix(".gz")
    return next((fmt for extension, fmt in EXTENSIONS.items() if name.endswith(extension)), None)


def _open(path: str):
    if "://" in path:
        import tensorflow as tf  # gs:// and other filesystems

        return tf.io.gfile.GFile(path, "rb")
    return open(path, "rb")


def _read_prefix(path: str, limit: int = _PREFIX_BYTES) -> bytes:
    """Up to ``limit`` bytes of the (possibly GZIP) file, cut after the last complete line."""
    with _open(path) as handle:
        head = handle.read(2)
        if head == b"\x1f\x8b":
            handle.seek(0)
            with gzip.GzipFile(fileobj=handle) as unzipped:
                data = unzipped.read(limit)
        else:
            data = head + handle.read(limit - 2)
    if len(data) >= limit and b"\n" in data:
        data = data[: data.rindex(b"\n") + 1]
    return data


def _lines(data: bytes, max_rows: int, skip: int = 0) -> list[bytes]:
    lines = [line for line in data.splitlines() if line.strip()]
    return lines[: max_rows + skip]


def read_csv_sample(path: str, max_rows: int) -> Sample:
    data = _read_prefix(path)
    delimiter = "\t" if path.lower().removesuffix(".gz").endswith(".tsv") else ","
    kept = _lines(data, max_rows, skip=1)
    if not kept:
        return Sample("csv", {}, 0, [path], [])
    text = b"\n".join(kept[1:]) + b"\n"
    names = next(csv.reader([kept[0].decode("utf-8-sig").rstrip("\r")], delimiter=delimiter), [])
    try:
        table = pcsv.read_csv(
            io.BytesIO(text),
            read_options=pcsv.ReadOptions(column_names=names, encoding="utf8"),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, invalid_row_handler=lambda row: "skip"),
            convert_options=pcsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        raise SampleError(f"{path}: not readable as CSV: {error}") from None
    columns = {name: table.column(i).to_pylist() for i, name in enumerate(names)}
    return Sample("csv", columns, table.num_rows, [path], names)


def read_jsonl_sample(path: str, max_rows: int) -> Sample:
    columns: dict[str, list] = {}
    rows = 0
    for number, line in enumerate(_lines(_read_prefix(path), max_rows), start=1):
        try:
            record = json.loads(line)
        except ValueError as error:
            raise SampleError(f"{path}:{number}: invalid JSON: {error}") from None
        if not isinstance(record, dict):
            raise SampleError(f"{path}:{number}: not a JSON object")
        for key, value in record.items():
            columns.setdefault(key, [None] * rows).append(
                value if value is None or isinstance(value, str) else json.dumps(value)
            )
        rows += 1
        for values in columns.values():
            if len(values) < rows:
                values.append(None)
    return Sample("jsonl", columns, rows, [path], list(columns))


def read_parquet_sample(path: str, max_rows: int) -> Sample:
    try:
        with _open(path) as handle:
            parquet = pq.ParquetFile(pa.BufferReader(handle.read()))
            batch = next(parquet.iter_batches(batch_size=max_rows), None)
    except (pa.ArrowInvalid, OSError) as error:
        raise SampleError(f"{path}: not readable as Parquet: {error}") from None
    names = list(parquet.schema_arrow.names)
    if batch is None:
        return Sample("parquet", {n: [] for n in names}, 0, [path], names)
    columns = {name: batch.column(i).to_pylist() for i, name in enumerate(batch.schema.names)}
    numeric = {
        name
        for name, field in zip(batch.schema.names, batch.schema, strict=True)
        if pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
    }
    return Sample("parquet", columns, batch.num_rows, [path], names, numeric)


def read_letor_sample(path: str, max_rows: int) -> Sample:
    rows: list[dict[str, str]] = []
    indices: dict[str, None] = {}
    for number, raw in enumerate(_read_prefix(path).decode("utf-8", errors="replace").splitlines(), start=1):
        if len(rows) >= max_rows:
            break
        body, _, comment = raw.partition("#")
        tokens = body.split()
        if not tokens:
            continue
        row = {LETOR_LABEL: tokens[0]}
        for token in tokens[1:]:
            key, sep, value = token.partition(":")
            if not sep or not key:
                raise SampleError(f"{path}:{number}: malformed token '{token}' (expected index:value)")
            if key == "qid":
                row[LETOR_QID] = value
            else:
                row[key] = value
                indices[key] = None
        match = _DOCID_COMMENT.search(comment)
        if match:
            row[LETOR_DOCID] = match.group(1)
        rows.append(row)
    ordered = sorted(indices, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
    names = [LETOR_LABEL, LETOR_QID, *([LETOR_DOCID] if any(LETOR_DOCID in r for r in rows) else []), *ordered]
    columns = {name: [row.get(name) for row in rows] for name in names}
    return Sample("letor", columns, len(rows), [path], names)


def read_elwc_sample(path: str, max_rows: int) -> Sample:
    import tensorflow as tf  # Only ELWC inputs pay for the import.
    from tensorflow_serving.apis import input_pb2

    with _open(path) as handle:
        compression = "GZIP" if handle.read(2) == b"\x1f\x8b" else ""
    rows: list[dict] = []
    context_keys: set[str] = set()
    try:
        for number, record in enumerate(tf.data.TFRecordDataset([path], compression_type=compression), start=1):
            elwc = input_pb2.ExampleListWithContext.FromString(record.numpy())
            context = {k: _proto_value(v) for k, v in elwc.context.features.feature.items()}
            context_keys.update(context)
            for example in elwc.examples:
                row = {ELWC_LIST: f"{path}#{number}", **context}
                row.update({k: _proto_value(v) for k, v in example.features.feature.items()})
                rows.append(row)
            if len(rows) >= max_rows:
                break
    except (tf.errors.OpError, Exception) as error:  # noqa: BLE001 - DataLossError, DecodeError
        raise SampleError(f"{path}: not readable as ELWC TFRecords: {error}") from None
    names = list(dict.fromkeys(k for row in rows for k in row))
    columns = {name: [row.get(name) for row in rows] for name in names}
    numeric = {n for n in names if n != ELWC_LIST and any(isinstance(r.get(n), int | float) for r in rows)}
    return Sample("elwc", columns, len(rows), [path], names, numeric, context_keys)


def _proto_value(feature):
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    if not values:
        return None
    value = values[0]
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


READERS = {
    "csv": read_csv_sample,
    "jsonl": read_jsonl_sample,
    "parquet": read_parquet_sample,
    "letor": read_letor_sample,
    "elwc": read_elwc_sample,
}


def read_sample(path: str, fmt: str, max_rows: int) -> Sample:
    """The first ``max_rows`` rows of one file, ``fmt`` being a concrete format (not ``auto``)."""
    try:
        return READERS[fmt](path, max_rows)
    except OSError as error:
        raise SampleError(f"{path}: cannot be read: {error}") from None


def flatten_lists(sample: Sample, documents_field: str) -> Sample:
    """A sample of nested list rows (``examples.documents_field``) as one row per document: the
    row's fields repeated beside each document's (what ExampleGen's ``nested.flatten`` reads)."""
    if sample.format not in ("jsonl", "parquet"):
        raise SampleError(
            f"{sample.files[0] if sample.files else 'input'}: examples.documents_field needs "
            f"JSON Lines or Parquet files, not {sample.format}"
        )
    top = [name for name in sample.header if name != documents_field]
    rows: list[dict] = []
    for i, docs in enumerate(sample.columns.get(documents_field, [])):
        if isinstance(docs, str):  # JSON Lines samples keep nested values as JSON text
            try:
                docs = json.loads(docs)
            except ValueError:
                continue
        if not isinstance(docs, list):
            continue
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            row = {name: sample.columns[name][i] for name in top}
            row.update(
                {k: v if v is None or isinstance(v, str | int | float) else json.dumps(v) for k, v in doc.items()}
            )
            rows.append(row)
    names = list(dict.fromkeys([*top, *(k for row in rows for k in row)]))
    columns = {name: [row.get(name) for row in rows] for name in names}
    numeric = set(sample.numeric) | {
        n for n in names if any(isinstance(r.get(n), int | float) and not isinstance(r.get(n), bool) for r in rows)
    }
    return Sample(sample.format, columns, len(rows), list(sample.files), names, numeric)
