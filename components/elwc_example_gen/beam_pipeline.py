"""The ExampleGen's Beam graph: files -> pieces -> GroupByKey(query id) -> ELWC splits + dead letter + stats.

::

    MatchAll->Reshuffle -> ReadMatches ->ReadFile ─pieces─> GroupByKey -> AssembleList ─> Partition -> WriteToTFRecord
                                               ├─dead_letter───────────────────────────────────> WriteToText (.jsonl)
                                               └─stats──────────────────────┴─stats─> CombineGlobally -> _stats.json

``Reshuffle`` after matching spreads the files over the workers (otherwise the
whole read fuses into the single-element ``Create`` stage). Files are parsed
whole, column-wise (:mod:`columns`, :mod:`pieces`), so per-row Python work is
small; the split of a list is a hash of its query id, so a query is never in
two splits whatever file its rows came from.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.transforms.window import GlobalWindows
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.elwc_example_gen import columns as columns_lib
from components.elwc_example_gen import formats
from components.elwc_example_gen.elwc_input import elwc_file_pieces
from components.elwc_example_gen.pieces import Piece, assemble, file_pieces
from components.elwc_example_gen.summary import MergeStats
from modules.features import feature_set_from_schema

NAMESPACE = "ElwcExampleGen"
DEAD_LETTER_TAG = "dead_letter"
STATS_TAG = "stats"
MAX_DEAD_LETTER_RAW_CHARS = 2000


def query_bucket(query_id: bytes, total_buckets: int) -> int:
    """Stable bucket of a query id (same in every process and run)."""
    return int.from_bytes(hashlib.sha256(query_id).digest()[:8], "big") % total_buckets


class ReadFile(beam.DoFn):
    """ReadableFile -> (query id, Piece); dead-letter entries and per-file stats as side outputs."""

    def __init__(self, schema_text: str, options_json: str, max_list_size: int):
        self._schema_text = schema_text
        self._options_json = options_json
        self._max_list_size = max_list_size
        self._rows = beam.metrics.Metrics.counter(NAMESPACE, "rows")
        self._bad_rows = beam.metrics.Metrics.counter(NAMESPACE, "bad_rows")

    def setup(self) -> None:
        self._feature_set = feature_set_from_schema(text_format.Parse(self._schema_text, schema_pb2.Schema()))
        self._options = formats.FormatOptions.from_json(self._options_json)

    def process(self, readable: fileio.ReadableFile) -> Iterator:
        source = readable.metadata.path
        fmt = formats.infer_format(source, self._options.format)
        # Raw bytes: the readers detect GZIP themselves (Beam would only for some suffixes).
        with readable.open(compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            data = handle.read()
        if fmt == "elwc":
            pieces, dead, stats = elwc_file_pieces(data, source, self._feature_set, self._max_list_size)
        else:
            pieces, dead, stats = self._flat_file(data, source, fmt)
        stats["files"] = 1
        stats["bad"] = dict(collections.Counter(entry["reason"] for entry in dead))
        self._rows.inc(stats["rows"])
        self._bad_rows.inc(len(dead))
        yield from pieces
        for entry in dead:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, entry)
        yield beam.pvalue.TaggedOutput(STATS_TAG, stats)

    def _flat_file(self, data: bytes, source: str, fmt: str):
        raw = formats.read_flat_file(data, source, fmt, self._options, self._feature_set)
        typed = columns_lib.type_table(raw.columns, raw.num_rows, self._feature_set)
        dead = list(raw.dead_letter)
        for index, problem in enumerate(typed.bad):
            if problem is not None:
                entry = formats.dead_letter_entry(problem[0], source, int(raw.lines[index]), problem[1])
                if raw.raw_rows is not None:
                    entry["raw"] = _truncate(raw.raw_rows(index))
                dead.append(entry)
        pieces = file_pieces(typed, raw.lines, source, self._feature_set, self._max_list_size)
        stats = {"rows": raw.num_rows + len(raw.dead_letter), "missing": typed.missing}
        return pieces, dead, stats


def _truncate(raw: object) -> object:
    text = json.dumps(raw, default=str)
    return raw if len(text) <= MAX_DEAD_LETTER_RAW_CHARS else text[:MAX_DEAD_LETTER_RAW_CHARS] + "..."


class AssembleList(beam.DoFn):
    """(query id, pieces) -> (split index, serialized ELWC); list statistics per bundle as a side output."""

    def __init__(self, max_list_size: int, buckets: list[int] | None, split_names: list[str], fixed_split: int = 0):
        self._max_list_size = max_list_size
        self._buckets = buckets  # cumulative hash buckets per split; None: every list goes to fixed_split
        self._split_names = split_names
        self._fixed_split = fixed_split
        self._lists = beam.metrics.Metrics.counter(NAMESPACE, "lists")
        self._cut = beam.metrics.Metrics.counter(NAMESPACE, "documents_cut_by_max_list_size")

    def start_bundle(self) -> None:
        self._stats: dict = {}

    def process(self, element: tuple[bytes, list[Piece]]) -> Iterator[tuple[int, bytes]]:
        query_id, pieces = element
        record, written, cut = assemble(list(pieces), self._max_list_size)
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
            self._cut.inc(cut)
        self._lists.inc()
        yield split, record

    def finish_bundle(self):
        if self._stats:
            yield beam.pvalue.TaggedOutput(STATS_TAG, GlobalWindows.windowed_value(self._stats))


@beam.ptransform_fn
def ReadPieces(pipeline: beam.Pipeline, pattern: str, schema_text: str, options_json: str, max_list_size: int):
    return (
        pipeline
        | "Pattern" >> beam.Create([pattern])
        | "Match" >> fileio.MatchAll()
        | "SpreadFiles" >> beam.Reshuffle()
        | "Open" >> fileio.ReadMatches()
        | "ReadFile"
        >> beam.ParDo(ReadFile(schema_text, options_json, max_list_size)).with_outputs(
            DEAD_LETTER_TAG, STATS_TAG, main="pieces"
        )
    )


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
) -> None:
    """Adds the whole ExampleGen graph to ``pipeline``.

    With ``buckets`` (cumulative hash buckets per output split) there is one input pattern whose
    lists are split by query hash; without, each input pattern is its own split (input-defined splits).
    """
    dead_letters, stats, records = [], [], []
    for index, pattern in enumerate(input_patterns):
        read = pipeline | f"Read[{index}]" >> ReadPieces(pattern, schema_text, options_json, max_list_size)
        assembled = (
            read.pieces
            | f"GroupByQuery[{index}]" >> beam.GroupByKey()
            | f"AssembleLists[{index}]"
            >> beam.ParDo(AssembleList(max_list_size, buckets, split_names, fixed_split=index)).with_outputs(
                STATS_TAG, main="records"
            )
        )
        dead_letters.append(read[DEAD_LETTER_TAG])
        stats += [read[STATS_TAG], assembled[STATS_TAG]]
        records.append(assembled.records)

    all_records = records[0] if len(records) == 1 else records | "AllRecords" >> beam.Flatten()
    by_split = all_records | "BySplit" >> beam.Partition(lambda item, n: item[0], len(split_names))
    for index, name in enumerate(split_names):
        (
            by_split[index]
            | f"Record[{name}]" >> beam.Map(lambda item: item[1])
            | f"Write[{name}]"
            >> beam.io.WriteToTFRecord(os.path.join(split_uris[name], "data_tfrecord"), file_name_suffix=".gz")
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
