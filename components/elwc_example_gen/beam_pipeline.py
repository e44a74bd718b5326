"""The ExampleGen's Beam graph: files -> chunks -> ELWC lists, streamed; dead letter and stats beside.

::

    MatchAll -> Reshuffle -> ReadMatches ─┬─> CountQueries ─> CombinePerKey ─> queries in >1 chunk ──(side input)─┐
                                          └─> ReadChunks <───────────────────── corrupt files ────(side input)──┘
    ReadChunks ─complete lists──────────────────────────────────────────> Partition(split) -> WriteToTFRecord
               ├─pieces of shared queries─> GroupByKey -> AssembleList ─┘
               ├─dead_letter──────────────────────────────────────────> WriteToText (.jsonl)
               └─stats──────────────────────────────────────┴─stats─> CombineGlobally -> _stats.json

A file is read a chunk of about ``chunk_bytes`` at a time (LETOR, JSON Lines: whole
lines; CSV: whole lines led by the header; Parquet: rows), parsed and typed column-wise (:mod:`formats`,
:mod:`columns`) and encoded in bulk (:mod:`encode`), two chunks at a time in
threads (numpy and pyarrow release the GIL). A first, light pass counts
in how many chunks each query id occurs: a query found in one chunk only is a
complete list, written straight from that chunk, so nothing proportional to the
data is held in memory. Only queries spread over several chunks or files (and
ELWC inputs, read whole) go through the ``GroupByKey`` as pieces, so a list is
never split, whether or not a query's rows are contiguous. ``Reshuffle`` after
matching spreads the files over the workers; the split of a list is a hash of its
query id, so a query is never in two splits.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator

import apache_beam as beam
import numpy as np
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.transforms.window import GlobalWindows
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.elwc_example_gen import columns as columns_lib
from components.elwc_example_gen import events as events_lib
from components.elwc_example_gen import formats, sources
from components.elwc_example_gen.elwc_input import elwc_file_pieces
from components.elwc_example_gen.pieces import Piece, assemble, chunk_lists
from components.elwc_example_gen.summary import MergeStats
from components.elwc_example_gen.tfrecord_sink import WriteToGzipTFRecord
from modules.features import FeatureSet, feature_set_from_schema

NAMESPACE = "ElwcExampleGen"
DEAD_LETTER_TAG = "dead_letter"
STATS_TAG = "stats"
PIECES_TAG = "pieces"
CORRUPT_TAG = "corrupt"
# Formats whose query ids are counted first, so that their complete lists skip the GroupByKey.
COUNTED_FORMATS = ("csv", "parquet", "letor", "jsonl")
# Chunks of one file parsed at once, in threads (numpy and pyarrow release the GIL).
PARSE_THREADS = min(2, os.cpu_count() or 1)


def query_bucket(query_id: bytes, total_buckets: int) -> int:
    """Stable bucket of a query id (same in every process and run)."""
    return int.from_bytes(hashlib.sha256(query_id).digest()[:8], "big") % total_buckets


def _open(readable: fileio.ReadableFile):
    # Raw bytes: GZIP is detected from the data (Beam would only for some suffixes).
    return readable.open(compression_type=CompressionTypes.UNCOMPRESSED)


def file_chunks(
    readable: fileio.ReadableFile,
    fmt: str,
    options: formats.FormatOptions,
    feature_set: FeatureSet,
    counter: sources.LineCounter | None = None,
) -> Iterator[tuple[int, bytes | object]]:
    """(first line or row, chunk) of each chunk of a file, about ``options.chunk_bytes`` each.

    LETOR and JSON Lines: whole lines (neither format lets a value hold a newline); CSV: whole
    records (a quoted value may span lines), each chunk led by the header line
    (``sources.header_chunks``; an unterminated quote raises ``CorruptFileError``); Parquet:
    rows, as a ``pyarrow.Table`` (``formats.parquet_chunks``).
    """
    source = readable.metadata.path
    counter = counter or sources.LineCounter()
    with _open(readable) as handle:
        if fmt == "parquet":
            yield from formats.parquet_chunks(handle, source, options, feature_set)
            return
        parts = counter(sources.blocks(handle, source))
        if fmt == "csv":  # a chunk ends only where a record does, never inside a quoted value
            quoting = sources.CsvQuoting(ord(formats.csv_delimiter(source, options)), source)
            yield from sources.header_chunks(parts, options.chunk_bytes, quoting=quoting)
        else:
            yield from sources.line_chunks(parts, options.chunk_bytes)


def pipelined(function: Callable, items: Iterable, threads: int | None = None) -> Iterator:
    """``function(item)`` for each item, in order, ``threads`` at a time (at most ``threads + 1`` in memory)."""
    threads = threads or PARSE_THREADS
    if threads <= 1:
        yield from map(function, items)
        return
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        pending: collections.deque = collections.deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def chunk_query_ids(data, source: str, fmt: str, options: formats.FormatOptions, feature_set: FeatureSet):
    """The distinct typed query ids of one chunk (what the full read will group by)."""
    raw = formats.read_query_ids(data, source, fmt, options, feature_set)
    typed = columns_lib.type_column(raw, feature_set.query_id, [None] * len(raw))
    return typed.drop_null().unique().to_pylist()


class _SchemaDoFn(beam.DoFn):
    def __init__(self, schema_text: str, options_json: str):
        self._schema_text = schema_text
        self._options_json = options_json

    def setup(self) -> None:
        self._feature_set = feature_set_from_schema(text_format.Parse(self._schema_text, schema_pb2.Schema()))
        self._options = formats.FormatOptions.from_json(self._options_json)


def corrupt_entry(error: sources.CorruptFileError, source: str, rows: int) -> dict:
    entry = formats.dead_letter_entry(sources.CORRUPT_FILE, source, 0, str(error))
    entry["rows"] = max(rows, 1)  # counted as this many bad rows
    return entry


class CountQueries(_SchemaDoFn):
    """ReadableFile -> (query id, 1) per chunk holding it; a corrupt file -> its dead-letter entry (tagged)."""

    def process(self, readable: fileio.ReadableFile) -> Iterator:
        source = readable.metadata.path
        fmt = formats.infer_format(source, self._options.format)
        if fmt not in COUNTED_FORMATS:
            return
        counter = sources.LineCounter()
        chunks = file_chunks(readable, fmt, self._options, self._feature_set, counter)
        try:
            for query_ids in pipelined(
                lambda chunk: chunk_query_ids(chunk[1], source, fmt, self._options, self._feature_set), chunks
            ):
                for query_id in query_ids:
                    yield query_id, 1
        except sources.CorruptFileError as error:
            yield beam.pvalue.TaggedOutput(CORRUPT_TAG, corrupt_entry(error, source, counter.lines))


class ReadChunks(_SchemaDoFn):
    """ReadableFile -> (split, ELWC) for complete lists; pieces of shared queries, dead letter, stats tagged."""

    def __init__(self, schema_text, options_json, max_list_size, router: ListRouter):
        super().__init__(schema_text, options_json)
        self._max_list_size = max_list_size
        self._router = router
        self._rows = beam.metrics.Metrics.counter(NAMESPACE, "rows")
        self._bad_rows = beam.metrics.Metrics.counter(NAMESPACE, "bad_rows")

    def process(self, readable: fileio.ReadableFile, shared: dict, corrupt: dict) -> Iterator:
        source = readable.metadata.path
        fmt = formats.infer_format(source, self._options.format)
        if source in corrupt:  # counted and dead-lettered by CountQueries
            entry = corrupt[source]
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, entry)
            yield beam.pvalue.TaggedOutput(
                STATS_TAG, {"files": 1, "rows": entry["rows"], "bad": {sources.CORRUPT_FILE: entry["rows"]}}
            )
            return
        if fmt in COUNTED_FORMATS:
            chunks = file_chunks(readable, fmt, self._options, self._feature_set)
            for parsed in pipelined(lambda chunk: self._parse(chunk[1], source, fmt, chunk[0], shared), chunks):
                yield from self._emit(*parsed)
        else:
            try:
                with _open(readable) as handle:
                    data = sources.read_all(handle, source)
            except sources.CorruptFileError as error:
                entry = corrupt_entry(error, source, 0)
                yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, entry)
                yield beam.pvalue.TaggedOutput(
                    STATS_TAG, {"files": 1, "rows": entry["rows"], "bad": {sources.CORRUPT_FILE: entry["rows"]}}
                )
                return
            # ELWC: every record is already a list; lists of one query in several records are merged.
            pieces, dead, stats = elwc_file_pieces(data, source, self._feature_set, self._max_list_size)
            for query_id, piece in pieces:
                yield beam.pvalue.TaggedOutput(PIECES_TAG, (query_id, piece))
            yield from self._finish(dead, stats)
        yield beam.pvalue.TaggedOutput(STATS_TAG, {"files": 1})

    def _parse(self, data: bytes | object, source: str, fmt: str, first_line: int, shared: dict | None) -> tuple:
        """One chunk -> (pieces of queries found elsewhere too, complete lists, dead letter, stats).

        Runs in a worker thread (numpy and pyarrow release the GIL): no Beam calls here.
        """
        if fmt == "letor":
            raw = formats.read_letor(data, source, self._options, self._feature_set, first_line=first_line)
        else:
            raw = formats.read_flat_file(data, source, fmt, self._options, self._feature_set, first_line)
        del data
        typed = columns_lib.type_table(raw.columns, raw.num_rows, self._feature_set)
        dead = formats.typed_dead_letter(raw, typed.bad, source)
        stats = {"rows": raw.num_rows + len(raw.dead_letter), "missing": typed.missing, **raw.extra_stats}
        lists = chunk_lists(typed, raw.lines, self._feature_set, self._max_list_size)
        pieces, complete_lists = [], []
        if lists is not None:
            alone = np.asarray([shared is not None and qid not in shared for qid in lists.query_ids], bool)
            pieces = lists.pieces(np.flatnonzero(~alone), source)
            complete = np.flatnonzero(alone)
            if len(complete):
                records = lists.records(complete).to_pylist()
                for i, record in zip(complete.tolist(), records, strict=True):
                    written = int(lists.offsets[i + 1] - lists.offsets[i])
                    complete_lists.append((lists.query_ids[i], record, written, int(lists.cut[i])))
        return pieces, complete_lists, dead, stats

    def _emit(self, pieces: list, complete_lists: list, dead: list[dict], stats: dict) -> Iterator:
        """A parsed chunk's outputs: complete lists routed to their split, pieces to the GroupByKey."""
        for query_id, piece in pieces:
            yield beam.pvalue.TaggedOutput(PIECES_TAG, (query_id, piece))
        for query_id, record, written, cut in complete_lists:
            yield self._router.route(query_id, record, written, cut)
        if complete_lists:
            yield beam.pvalue.TaggedOutput(STATS_TAG, self._router.take_stats())
        yield from self._finish(dead, stats)

    def _finish(self, dead: list[dict], stats: dict) -> Iterator:
        stats["bad"] = dict(collections.Counter(entry["reason"] for entry in dead))
        self._rows.inc(stats["rows"])
        self._bad_rows.inc(len(dead))
        for entry in dead:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, entry)
        yield beam.pvalue.TaggedOutput(STATS_TAG, stats)


class ListRouter:
    """Assigns a list to its split (hash of the query id, or a fixed split) and counts list statistics."""

    def __init__(self, buckets: list[int] | None, split_names: list[str], fixed_split: int = 0):
        self._buckets = buckets  # cumulative hash buckets per split; None: every list goes to fixed_split
        self._split_names = split_names
        self._fixed_split = fixed_split
        self._stats: dict = {}

    def route(self, query_id: bytes, record: bytes, written: int, cut: int) -> tuple[int, bytes]:
        split = self._fixed_split
        if self._buckets:
            bucket = query_bucket(query_id, self._buckets[-1])
            split = next(i for i, limit in enumerate(self._buckets) if bucket < limit)
        name = self._split_names[split]
        split_stats = self._stats.setdefault("splits", {}).setdefault(
            name, {"lists": 0, "documents": 0, "list_sizes": {}}
        )
        split_stats["lists"] += 1
        split_stats["documents"] += written
        sizes = split_stats["list_sizes"]
        sizes[str(written)] = sizes.get(str(written), 0) + 1
        if cut:
            self._stats["lists_capped"] = self._stats.get("lists_capped", 0) + 1
            self._stats["documents_cut"] = self._stats.get("documents_cut", 0) + cut
        return split, record

    def take_stats(self) -> dict:
        stats, self._stats = self._stats, {}
        return stats


class AssembleList(beam.DoFn):
    """(query id, pieces) -> (split index, serialized ELWC); list statistics per bundle as a side output."""

    def __init__(self, max_list_size: int, router: ListRouter):
        self._max_list_size = max_list_size
        self._router = router

    def process(self, element: tuple[bytes, list[Piece]]) -> Iterator[tuple[int, bytes]]:
        query_id, pieces = element
        record, written, cut = assemble(list(pieces), self._max_list_size)
        yield self._router.route(query_id, record, written, cut)

    def finish_bundle(self):
        stats = self._router.take_stats()
        if stats:
            yield beam.pvalue.TaggedOutput(STATS_TAG, GlobalWindows.windowed_value(stats))


@beam.ptransform_fn
def ReadLists(
    pipeline: beam.Pipeline, pattern: str, schema_text: str, options_json: str, max_list_size: int, router: ListRouter
):
    """Files matching ``pattern`` -> (split, ELWC) of complete lists, plus pieces, dead letter and stats (tagged)."""
    files = (
        pipeline
        | "Pattern" >> beam.Create([pattern])
        | "Match" >> fileio.MatchAll()
        | "SpreadFiles" >> beam.Reshuffle()
        | "Open" >> fileio.ReadMatches()
    )
    counted = files | "CountQueries" >> beam.ParDo(CountQueries(schema_text, options_json)).with_outputs(
        CORRUPT_TAG, main="counts"
    )
    shared = (
        counted.counts
        | "ChunksPerQuery" >> beam.CombinePerKey(sum)
        | "InSeveralChunks" >> beam.Filter(lambda item: item[1] > 1)
    )
    corrupt = counted[CORRUPT_TAG] | "BySource" >> beam.Map(lambda entry: (entry["source"], entry))
    return files | "ReadChunks" >> beam.ParDo(
        ReadChunks(schema_text, options_json, max_list_size, router),
        shared=beam.pvalue.AsDict(shared),
        corrupt=beam.pvalue.AsDict(corrupt),
    ).with_outputs(PIECES_TAG, DEAD_LETTER_TAG, STATS_TAG, main="records")


def build_graph(
    pipeline: beam.Pipeline,
    *,
    input_patterns: list[str],
    split_names: list[str],
    buckets: list[int] | None,
    schema_text: str,
    options_json: str,
    max_list_size: int,
    split_uris: dict[str, str],
    dead_letter_prefix: str,
    stats_path: str,
    events: events_lib.EventsOptions | None = None,
    events_pattern: str | None = None,
) -> None:
    """Adds the whole ExampleGen graph to ``pipeline``.

    With ``buckets`` (cumulative hash buckets per output split) there is one input pattern whose
    lists are split by query hash; without, each input pattern is its own split (input-defined splits).
    With ``events``, labels are made from impressions and events (:mod:`events`, ``events_pattern``).
    """
    dead_letters, stats, records = [], [], []
    for index, pattern in enumerate(input_patterns):
        router = ListRouter(buckets, split_names, fixed_split=index)
        if events is None:
            read = pipeline | f"Read[{index}]" >> ReadLists(pattern, schema_text, options_json, max_list_size, router)
        else:
            read = events_lib.read_labeled_lists(
                pipeline,
                f"Read[{index}]",
                pattern,
                events_pattern,
                schema_text,
                options_json,
                events.to_json(),
                max_list_size,
            )
        assembled = (
            read[PIECES_TAG]
            | f"GroupByQuery[{index}]" >> beam.GroupByKey()
            | f"AssembleLists[{index}]"
            >> beam.ParDo(AssembleList(max_list_size, router)).with_outputs(STATS_TAG, main="records")
        )
        dead_letters.append(read[DEAD_LETTER_TAG])
        stats += [read[STATS_TAG], assembled[STATS_TAG]]
        records += [read.records, assembled.records] if read.records is not None else [assembled.records]

    # Each stream of records is written where it is produced (no Flatten), so nothing waits in memory.
    for stream, stream_records in enumerate(records):
        by_split = stream_records | f"BySplit[{stream}]" >> beam.Partition(lambda item, n: item[0], len(split_names))
        for index, name in enumerate(split_names):
            (
                by_split[index]
                | f"Record[{stream}][{name}]" >> beam.Map(lambda item: item[1])
                | f"Write[{stream}][{name}]"
                >> WriteToGzipTFRecord(
                    os.path.join(split_uris[name], f"data_tfrecord-{stream}"), file_name_suffix=".gz"
                )
            )
    (
        dead_letters
        | "AllDeadLetters" >> beam.Flatten()
        | "DeadLetterJson" >> beam.Map(lambda entry: json.dumps(entry, sort_keys=True, default=str))
        | "WriteDeadLetter" >> beam.io.WriteToText(dead_letter_prefix, file_name_suffix=".jsonl")
    )
    (
        stats
        | "AllStats" >> beam.Flatten()
        | "MergeStats" >> beam.CombineGlobally(MergeStats())
        | "StatsJson" >> beam.Map(lambda merged: json.dumps(merged, sort_keys=True))
        | "WriteStats" >> beam.io.WriteToText(stats_path, shard_name_template="")
    )
