"""Labels from interaction logs: impressions joined with events (``examples.events``).

Two shapes of logs, one label mapping (``labels``: event type or outcome column -> grade):

* **Separate inputs.** Impression rows (request id, item id, position, features; no label)
  and event rows (request id, item id, event type, optional timestamp), joined in Beam by
  ``CoGroupByKey`` on (request id, item id) -- the schema's ``role:query_id`` and
  ``role:doc_id`` features, read through ``examples.columns`` in both inputs. The label of an
  impression is the highest grade among its events, 0 if it has none. There is no time
  window: every event of an impression counts, however late it was logged and in whichever
  file of the span it is, and repeated events cannot change the highest grade (they are
  counted as duplicates). Event types absent from ``labels`` are ignored and counted per
  type. An event whose (request, item) has no impression goes to the dead letter
  (``event without impression``, with its file and line). A configured timestamp column is
  only validated: ISO-8601 with a zone offset (``2024-05-01T10:00:00Z``), a naive ISO-8601
  time (read as UTC) or epoch seconds; anything else sets the event aside
  (``bad_timestamp``).
* **Flat outcome columns** (``input_pattern: null``): the impression rows carry one column
  per outcome (``clicked``, ``bought``: 1/true/yes or 0/false/no); the label is the highest
  grade among the outcome columns that are true, 0 if none is.

Both go through the same typing and list building as unlabelled logs (:mod:`columns`,
:mod:`pieces`): the label column is made first, column-wise, then attached to the impression
rows by their line, so impressions are read by the same readers (:mod:`formats`) and never
one value at a time. The separate shape reads each impression file twice: once for its
(request, item) keys, once, after the join, for everything.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import re
from collections.abc import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.transforms.window import GlobalWindows
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.elwc_example_gen import columns as columns_lib
from components.elwc_example_gen import formats, sources
from components.elwc_example_gen.pieces import chunk_lists
from components.elwc_example_gen.rows import MISSING_TOKENS
from modules.features import Dtype, Feature, FeatureSet, Role, feature_set_from_schema

# Dead-letter reasons of the events path (beside those of columns.py).
EVENT_WITHOUT_IMPRESSION = "event without impression"
MISSING_DOC_ID = "missing_doc_id"
MISSING_EVENT = "missing_event"
BAD_TIMESTAMP = "bad_timestamp"
BAD_OUTCOME = "bad_outcome"

EVENT_FORMATS = ("auto", "csv", "jsonl", "parquet")
TRUE_TOKENS = ("1", "1.0", "true", "yes", "y", "t")
FALSE_TOKENS = ("0", "0.0", "false", "no", "n", "f")
# Internal names under which the reader hands over the non-schema columns.
_EVENT = "__event__"
_TIMESTAMP = "__timestamp__"
_OUTCOME = "__outcome__"
_SPEC = re.compile(r"\{(SPAN|VERSION|YYYY|MM|DD)")
_MISSING_LOWER = tuple(sorted({token.lower() for token in MISSING_TOKENS}))


class EventsConfigError(ValueError):
    """The events configuration cannot work with these inputs; the message names the key."""


@dataclasses.dataclass(frozen=True)
class EventsOptions:
    """``examples.events``: where the events are and how they map to grades."""

    input_pattern: str | None = None  # None: outcome columns on the impression rows (flat shape)
    format: str = "auto"
    event_column: str = "event"
    timestamp_column: str | None = None
    labels: dict[str, int] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> EventsOptions | None:
        return cls(**json.loads(text)) if text else None

    @property
    def separate(self) -> bool:
        return self.input_pattern is not None


# --- label mapping (column-wise) ---------------------------------------------------------


def event_grades(event_types: pa.Array, labels: dict[str, int]) -> pa.Array:
    """The grade of each event type (int64); null where the type is not in ``labels``."""
    names = pa.array(list(labels), pa.string())
    grades = pa.array(list(labels.values()), pa.int64())
    index = pc.index_in(event_types.cast(pa.string()), value_set=names)
    return grades.take(index)


def truthy(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(true, unrecognised) masks of an outcome column: 1/true/yes is true, 0/false/no or missing is false."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_boolean(column.type):
        return column.fill_null(False).to_numpy(zero_copy_only=False), np.zeros(len(column), bool)
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        return np.nan_to_num(values) != 0, np.zeros(len(column), bool)
    if pa.types.is_null(column.type):
        return np.zeros(len(column), bool), np.zeros(len(column), bool)
    text = pc.utf8_lower(pc.utf8_trim_whitespace(column.cast(pa.string())))
    true = pc.is_in(text, value_set=pa.array(TRUE_TOKENS)).fill_null(False).to_numpy(zero_copy_only=False)
    known = pc.is_in(text, value_set=pa.array(FALSE_TOKENS + tuple(_MISSING_LOWER)))
    unknown = ~(known.fill_null(True).to_numpy(zero_copy_only=False) | true)
    return true, unknown


def outcome_labels(outcomes: dict[str, pa.Array], labels: dict[str, int], num_rows: int):
    """(label per row: the highest grade of the true outcome columns, 0 if none; per row, the first
    column holding something that is neither true nor false, or None)."""
    label = np.zeros(num_rows, np.int64)
    bad: list[str | None] = [None] * num_rows
    for name, grade in labels.items():
        true, unknown = truthy(outcomes[name])
        label = np.where(true, np.maximum(label, grade), label)
        for i in np.flatnonzero(unknown):
            if bad[i] is None:
                bad[i] = name
    return label, bad


def label_of(grades: list[int | None]) -> int:
    """The label of one impression from the grades of its events: the highest, 0 if none."""
    known = [g for g in grades if g is not None]
    return max(known, default=0)


def check_timestamps(column: pa.Array) -> np.ndarray:
    """Mask of values that are present but not a time: ISO-8601 (with zone, or naive = UTC) or epoch seconds.

    Numbers and missing values are told apart column-wise; only when the other values do not all
    parse in one cast are they tried one by one, to name the bad rows.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_timestamp(column.type):
        return np.zeros(len(column), bool)
    text = pc.utf8_trim_whitespace(column.cast(pa.string()))
    missing = pc.is_in(text, value_set=pa.array(sorted(MISSING_TOKENS))).fill_null(True)
    number = pc.match_substring_regex(text, r"^[+-]?\d+(\.\d*)?$").fill_null(False)
    rows = np.flatnonzero(~(missing.to_numpy(zero_copy_only=False) | number.to_numpy(zero_copy_only=False)))
    bad = np.zeros(len(column), bool)
    if not len(rows):
        return bad
    times = text.take(pa.array(rows))
    if _parses_as_time(times):
        return bad
    for row, value in zip(rows.tolist(), times.to_pylist(), strict=True):
        bad[row] = not _parses_as_time(pa.array([value]))
    return bad


def _parses_as_time(values: pa.Array) -> bool:
    for target in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
        try:
            values.cast(target)
            return True
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return False


# --- span / version of the events pattern --------------------------------------------------


def resolve_pattern(pattern: str, span: int | None, version: int | None) -> str:
    """The events pattern for the impressions' span and version (the driver's resolution, same values)."""
    from tfx.components.example_gen import utils
    from tfx.proto import example_gen_pb2

    if not _SPEC.search(pattern):
        return pattern
    try:
        is_span, is_date, is_version = utils.verify_split_pattern_specs(
            example_gen_pb2.Input.Split(name="events", pattern=pattern)
        )
    except ValueError as error:
        raise EventsConfigError(f"examples.events.input_pattern '{pattern}': {error}") from None
    if span is None or (is_version and version is None):
        raise EventsConfigError(
            f"examples.events.input_pattern '{pattern}' uses {{SPAN}}/{{VERSION}} specs that "
            "examples.input_pattern does not: the events of a span are read with its impressions"
        )
    return utils.get_pattern_for_span_version(pattern, is_span, is_date, is_version, span, version)


def same_specs(events_pattern: str, impressions_pattern: str) -> bool:
    """Whether both patterns use the same span/version/date specs (so one span resolves both)."""
    return set(_SPEC.findall(events_pattern)) == set(_SPEC.findall(impressions_pattern))


# --- reading -----------------------------------------------------------------------------------


def _bytes(name: str, role: Role = Role.DOCUMENT) -> Feature:
    return Feature(name=name, role=role, dtype=Dtype.BYTES)


def _key_features(feature_set: FeatureSet) -> tuple[Feature, Feature]:
    doc_id = feature_set.single(Role.DOC_ID)
    if doc_id is None:
        raise EventsConfigError("examples.events needs a role:doc_id feature in the schema (the item id)")
    return feature_set.query_id, doc_id


def impression_read_set(feature_set: FeatureSet, events: EventsOptions) -> tuple[FeatureSet, dict[str, str]]:
    """What the impression files are read with: the schema's features but the label (which is made here),
    plus the outcome columns of the flat shape; and the extra column names to read them by."""
    features = [f for f in feature_set.features if f.role != Role.LABEL]
    extra = {}
    if not events.separate:
        for column in events.labels:
            features.append(_bytes(_OUTCOME + column))
            extra[_OUTCOME + column] = column
    return FeatureSet(tuple(features)), extra


def _options_with(options: formats.FormatOptions, extra: dict[str, str], fmt: str | None = None):
    return dataclasses.replace(options, columns={**options.columns, **extra}, format=fmt or options.format)


def read_impressions(
    data: bytes, source: str, options: formats.FormatOptions, feature_set: FeatureSet, events: EventsOptions
) -> formats.RawFile:
    fmt = formats.infer_format(source, options.format)
    if fmt not in ("csv", "jsonl", "parquet"):
        raise EventsConfigError(f"{source}: impressions with examples.events must be CSV, JSON Lines or Parquet")
    read_set, extra = impression_read_set(feature_set, events)
    raw = formats.read_flat_file(data, source, fmt, _options_with(options, extra), read_set)
    if not events.separate:
        absent = [column for name, column in extra.items() if name not in raw.columns]
        if absent and raw.num_rows:
            raise EventsConfigError(
                f"{source}: the outcome column(s) {absent} of examples.events.labels are not in the file"
            )
    return raw


def impression_keys(data: bytes, source: str, options: formats.FormatOptions, feature_set: FeatureSet):
    """(request id, item id, line) of every impression row with both ids (typed as the schema types them)."""
    query_id, doc_id = _key_features(feature_set)
    fmt = formats.infer_format(source, options.format)
    raw = formats.read_flat_file(data, source, fmt, options, FeatureSet((query_id, doc_id)))
    bad: list = [None] * raw.num_rows
    typed = [_typed(raw, f, bad) for f in (query_id, doc_id)]
    keep = ~(typed[0].is_null().to_numpy(zero_copy_only=False) | typed[1].is_null().to_numpy(zero_copy_only=False))
    rows = np.flatnonzero(keep)
    return zip(
        typed[0].take(pa.array(rows)).to_pylist(),
        typed[1].take(pa.array(rows)).to_pylist(),
        raw.lines[rows].tolist(),
        strict=True,
    )


def _typed(raw: formats.RawFile, feature: Feature, bad: list) -> pa.Array:
    column = raw.columns.get(feature.name)
    if column is None:
        return pa.nulls(raw.num_rows, columns_lib.ARROW_TYPES[feature.dtype])
    return columns_lib.type_column(column, feature, bad)


def read_events(
    data: bytes, source: str, options: formats.FormatOptions, feature_set: FeatureSet, events: EventsOptions
) -> tuple[list[tuple[tuple[bytes, bytes], tuple]], list[dict], int]:
    """One events file -> (((request, item), (grade, type, timestamp, source, line)) per good event,
    dead-letter entries, rows read)."""
    query_id, doc_id = _key_features(feature_set)
    fmt = formats.infer_format(source, events.format)
    if fmt not in ("csv", "jsonl", "parquet"):
        raise EventsConfigError(f"{source}: examples.events files must be CSV, JSON Lines or Parquet")
    extra = {_EVENT: events.event_column}
    wanted = [query_id, doc_id, _bytes(_EVENT)]
    if events.timestamp_column:
        extra[_TIMESTAMP] = events.timestamp_column
        wanted.append(_bytes(_TIMESTAMP))
    raw = formats.read_flat_file(data, source, fmt, _options_with(options, extra, fmt), FeatureSet(tuple(wanted)))
    for name, column, key in ((_EVENT, events.event_column, "event_column"), (_TIMESTAMP, None, "timestamp_column")):
        column = column or events.timestamp_column
        if column and raw.num_rows and name not in raw.columns:
            raise EventsConfigError(f"{source}: no column '{column}' (examples.events.{key}) in the events file")
    dead = list(raw.dead_letter)
    n = raw.num_rows
    bad: list = [None] * n
    request, item = (_typed(raw, f, bad) for f in (query_id, doc_id))
    kind = _typed(raw, _bytes(_EVENT), bad)
    checks = [
        (request, columns_lib.MISSING_QUERY_ID, query_id.name),
        (item, MISSING_DOC_ID, doc_id.name),
        (kind, MISSING_EVENT, _EVENT),
    ]
    for column, reason, name in checks:
        shown = options.columns.get(name, name) if name != _EVENT else events.event_column
        for i in np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False)):
            if bad[i] is None:
                bad[i] = (reason, f"column '{shown}' is empty")
    timestamps = pa.nulls(n, pa.string())
    if events.timestamp_column and _TIMESTAMP in raw.columns:
        timestamps = raw.columns[_TIMESTAMP]
        for i in np.flatnonzero(check_timestamps(timestamps)):
            if bad[i] is None:
                bad[i] = (BAD_TIMESTAMP, f"column '{events.timestamp_column}': {timestamps[i].as_py()!r} is not a time")
    grades = event_grades(kind.cast(pa.string()), events.labels).to_pylist()
    kinds = kind.cast(pa.string()).to_pylist()
    stamps = timestamps.cast(pa.string()).to_pylist()
    good = []
    for i, (r, d, grade, k, t, line) in enumerate(
        zip(request.to_pylist(), item.to_pylist(), grades, kinds, stamps, raw.lines.tolist(), strict=True)
    ):
        if bad[i] is None:
            good.append(((r, d), (grade, k, t, source, line)))
        else:
            dead.append(formats.row_dead_letter(bad[i][0], source, line, bad[i][1], raw.raw_rows, i))
    return good, dead, n + len(raw.dead_letter)


# --- Beam ----------------------------------------------------------------------------------------

DEAD_LETTER_TAG = "dead_letter"
STATS_TAG = "stats"
PIECES_TAG = "pieces"


def _open(readable: fileio.ReadableFile) -> bytes:
    with readable.open(compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return sources.read_all(handle, readable.metadata.path)


class _EventsDoFn(beam.DoFn):
    def __init__(self, schema_text: str, options_json: str, events_json: str):
        self._schema_text = schema_text
        self._options_json = options_json
        self._events_json = events_json

    def setup(self) -> None:
        self._feature_set = feature_set_from_schema(text_format.Parse(self._schema_text, schema_pb2.Schema()))
        self._options = formats.FormatOptions.from_json(self._options_json)
        self._events = EventsOptions.from_json(self._events_json)


def _corrupt(error: sources.CorruptFileError, source: str, stats_key: str | None = None) -> Iterator:
    entry = formats.dead_letter_entry(sources.CORRUPT_FILE, source, 0, str(error))
    entry["rows"] = 1
    yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, entry)
    stats = {"rows": 1, "bad": {sources.CORRUPT_FILE: 1}}
    if stats_key:
        stats["events"] = {stats_key: 1}
    else:
        stats["files"] = 1
    yield beam.pvalue.TaggedOutput(STATS_TAG, stats)


class ImpressionKeys(_EventsDoFn):
    """Impressions file -> ((request id, item id), (source, line)) per row with both ids."""

    def process(self, readable: fileio.ReadableFile) -> Iterator:
        source = readable.metadata.path
        try:
            data = _open(readable)
        except sources.CorruptFileError:
            return  # reported by ReadImpressions
        for request, item, line in impression_keys(data, source, self._options, self._feature_set):
            yield (request, item), (source, line)


class ReadEvents(_EventsDoFn):
    """Events file -> ((request id, item id), event) per good event; dead letter and stats tagged."""

    def process(self, readable: fileio.ReadableFile) -> Iterator:
        source = readable.metadata.path
        try:
            data = _open(readable)
        except sources.CorruptFileError as error:
            yield from _corrupt(error, source, stats_key="files")
            return
        good, dead, rows = read_events(data, source, self._options, self._feature_set, self._events)
        yield from good
        for entry in dead:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, entry)
        bad = dict(collections.Counter(entry["reason"] for entry in dead))
        yield beam.pvalue.TaggedOutput(STATS_TAG, {"rows": rows, "bad": bad, "events": {"files": 1, "rows": rows}})


class JoinLabels(beam.DoFn):
    """((request, item), {impressions, events}) -> (source, (line, label)) per impression with a label > 0.

    Events without an impression go to the dead letter; counts per bundle as a side output.
    """

    def start_bundle(self) -> None:
        self._stats: dict = {}

    def process(self, element) -> Iterator:
        _, grouped = element
        impressions, events = list(grouped["impressions"]), list(grouped["events"])
        stats = self._stats.setdefault("events", {})
        if not impressions:
            for _grade, kind, _stamp, source, line in events:
                detail = f"no impression of this request and item in the span (event '{kind}')"
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTER_TAG, formats.dead_letter_entry(EVENT_WITHOUT_IMPRESSION, source, line, detail)
                )
            bad = self._stats.setdefault("bad", {})
            bad[EVENT_WITHOUT_IMPRESSION] = bad.get(EVENT_WITHOUT_IMPRESSION, 0) + len(events)
            return
        distinct = {(kind, stamp) for _grade, kind, stamp, _source, _line in events}
        stats["matched"] = stats.get("matched", 0) + len(events)
        stats["duplicates"] = stats.get("duplicates", 0) + len(events) - len(distinct)
        for grade, kind, *_ in events:
            if grade is None:
                ignored = stats.setdefault("ignored_types", {})
                ignored[kind] = ignored.get(kind, 0) + 1
        label = label_of([grade for grade, *_ in events])
        labels = stats.setdefault("labels", {})
        labels[str(label)] = labels.get(str(label), 0) + len(impressions)
        if label:  # only labelled impressions are sent on: an impression not among them is a 0
            for source, line in impressions:
                yield source, (line, label)

    def finish_bundle(self):
        if self._stats:
            yield beam.pvalue.TaggedOutput(STATS_TAG, GlobalWindows.windowed_value(self._stats))
            self._stats = {}


def _label_arrays(element) -> tuple[str, tuple[np.ndarray, np.ndarray]]:
    source, pairs = element
    pairs = np.asarray(sorted(pairs), np.int64).reshape(-1, 2)
    return source, (pairs[:, 0], pairs[:, 1])


class ReadImpressions(_EventsDoFn):
    """Impressions file + its labels -> (query id, piece) per list; dead letter and stats tagged.

    ``labels``: source -> (sorted lines, labels) of its impressions with a label above 0; every other
    impression with a request and item id went through the join without a graded event: 0.
    """

    def __init__(self, schema_text: str, options_json: str, events_json: str, max_list_size: int):
        super().__init__(schema_text, options_json, events_json)
        self._max_list_size = max_list_size

    def process(self, readable: fileio.ReadableFile, labels: dict | None = None) -> Iterator:
        source = readable.metadata.path
        try:
            data = _open(readable)
        except sources.CorruptFileError as error:
            yield from _corrupt(error, source)
            return
        raw = read_impressions(data, source, self._options, self._feature_set, self._events)
        del data
        n = raw.num_rows
        bad: list = [None] * n
        label_feature = self._feature_set.label
        if self._events.separate:
            _, doc_id = _key_features(self._feature_set)
            ids = _typed(raw, doc_id, [None] * n)
            for i in np.flatnonzero(ids.is_null().to_numpy(zero_copy_only=False)):
                bad[i] = (MISSING_DOC_ID, f"column '{self._options.source_column(doc_id.name)}' is empty")
            lines, grades = (labels or {}).get(source, (np.zeros(0, np.int64), np.zeros(0, np.int64)))
            at = np.minimum(np.searchsorted(lines, raw.lines), max(len(lines) - 1, 0))
            found = (lines[at] == raw.lines) if len(lines) else np.zeros(n, bool)
            label = pa.array(np.where(found, grades[at] if len(lines) else 0, 0), pa.int64())
        else:
            outcomes = {column: raw.columns[_OUTCOME + column] for column in self._events.labels}
            values, unknown = outcome_labels(outcomes, self._events.labels, n)
            for i, column in enumerate(unknown):
                if column is not None:
                    value = outcomes[column][i].as_py()
                    bad[i] = (BAD_OUTCOME, f"column '{column}': {value!r} is neither true (1/true/yes) nor false")
            label = pa.array(values, pa.int64())
        raw.columns[label_feature.name] = label
        typed = columns_lib.type_table(raw.columns, n, self._feature_set, bad=bad)
        dead = formats.typed_dead_letter(raw, typed.bad, source)
        lists = chunk_lists(typed, raw.lines, self._feature_set, self._max_list_size)
        if lists is not None:
            for query_id, piece in lists.pieces(np.arange(len(lists.query_ids)), source):
                yield beam.pvalue.TaggedOutput(PIECES_TAG, (query_id, piece))
        for entry in dead:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, entry)
        stats = {
            "files": 1,
            "rows": n + len(raw.dead_letter),
            "missing": typed.missing,
            "bad": dict(collections.Counter(entry["reason"] for entry in dead)),
        }
        if not self._events.separate:
            good = typed.good_mask
            counts = collections.Counter(np.asarray(label)[good].tolist())
            stats["events"] = {"labels": {str(k): v for k, v in counts.items()}}
        yield beam.pvalue.TaggedOutput(STATS_TAG, stats)


class LabeledReads:
    """The outputs of :func:`read_labeled_lists`, addressed as ``beam_pipeline`` addresses ``ReadLists``'."""

    def __init__(self, pieces, dead_letters, stats):
        self._outputs = {PIECES_TAG: pieces, DEAD_LETTER_TAG: dead_letters, STATS_TAG: stats}
        self.records = None  # every list goes through the GroupByKey as pieces

    def __getitem__(self, tag: str):
        return self._outputs[tag]


def _files(pipeline: beam.Pipeline, name: str, pattern: str):
    return (
        pipeline
        | f"{name}Pattern" >> beam.Create([pattern])
        | f"{name}Match" >> fileio.MatchAll()
        | f"{name}Spread" >> beam.Reshuffle()
        | f"{name}Open" >> fileio.ReadMatches()
    )


def read_labeled_lists(
    pipeline: beam.Pipeline,
    prefix: str,
    pattern: str,
    events_pattern: str | None,
    schema_text: str,
    options_json: str,
    events_json: str,
    max_list_size: int,
) -> LabeledReads:
    """Impressions (and events) -> (query id, piece) per list, labels from the events; dead letters, stats."""
    args = (schema_text, options_json, events_json)
    impressions = _files(pipeline, f"{prefix}Impressions", pattern)
    dead_letters, stats = [], []
    labels = None
    if events_pattern is not None:
        keys = impressions | f"{prefix}ImpressionKeys" >> beam.ParDo(ImpressionKeys(*args))
        events = _files(pipeline, f"{prefix}Events", events_pattern) | f"{prefix}ReadEvents" >> beam.ParDo(
            ReadEvents(*args)
        ).with_outputs(DEAD_LETTER_TAG, STATS_TAG, main="events")
        joined = (
            {"impressions": keys, "events": events.events}
            | f"{prefix}JoinByRequestAndItem" >> beam.CoGroupByKey()
            | f"{prefix}Labels" >> beam.ParDo(JoinLabels()).with_outputs(DEAD_LETTER_TAG, STATS_TAG, main="labels")
        )
        labels = beam.pvalue.AsDict(
            joined.labels
            | f"{prefix}LabelsBySource" >> beam.GroupByKey()
            | f"{prefix}LabelArrays" >> beam.Map(_label_arrays)
        )
        dead_letters += [events[DEAD_LETTER_TAG], joined[DEAD_LETTER_TAG]]
        stats += [events[STATS_TAG], joined[STATS_TAG]]
    read = impressions | f"{prefix}ReadImpressions" >> beam.ParDo(
        ReadImpressions(*args, max_list_size), **({"labels": labels} if labels is not None else {})
    ).with_outputs(PIECES_TAG, DEAD_LETTER_TAG, STATS_TAG, main="unused")
    dead_letters.append(read[DEAD_LETTER_TAG])
    stats.append(read[STATS_TAG])
    dead = dead_letters | f"{prefix}EventDeadLetters" >> beam.Flatten()
    return LabeledReads(read[PIECES_TAG], dead, stats | f"{prefix}EventStats" >> beam.Flatten())


def events_pattern_for(events: EventsOptions, input_base: str, span, version) -> str | None:
    """The full, resolved events pattern of this run (None for the flat shape)."""
    if not events.separate:
        return None
    return os.path.join(input_base, resolve_pattern(events.input_pattern, span, version))
