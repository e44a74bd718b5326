"""Checks before any component runs: the schema, the config against it, and the input files.

``ltr run`` calls :func:`preflight` after loading the config and before the first
component. Each problem is one :class:`PreflightError` line naming the file,
feature, key or tag; features that never occur in the first rows of the input
are returned as warnings (they would silently take their default everywhere).

What is checked:
* the schema: it parses; every tag is ``key:value`` with a known key and, for
  ``role:`` and ``transform:``, a known value (a typo such as ``tranform:zscore``
  would otherwise be ignored); then the rules of ``modules.features`` (defaults
  parse, exactly one query id and one label, ...);
* the config: ``examples.columns``, ``examples.letor_features`` and
  ``transform.overrides`` name schema features (and valid transforms);
* the input: the data root exists and ``examples.input_pattern`` resolves to files
  for the requested span (by TFX's own span/version resolution, as the driver does);
  the first rows of each file carry the query id, the label and at least one model
  feature under the configured names;
* ``examples.events`` (labels from interaction logs): the schema has the query id and doc
  id features the join needs, every grade of ``labels`` is an integer within the label's
  domain; the events files of the same span exist and their first rows carry the request
  id, item id, event (and timestamp) columns; the impressions carry the item id (and, in
  the flat shape, the outcome columns) instead of the label; event types found in the first
  rows that ``labels`` does not map are a warning (they are ignored);
* ``examples.documents_field`` (nested list exports): the first rows are flattened as
  ExampleGen flattens them, so the columns are looked for inside the documents too.
"""

from __future__ import annotations

import dataclasses
import difflib
import os

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from modules.features import (
    FeatureSet,
    Role,
    SchemaError,
    Transform,
    check_transform,
    feature_set_from_schema,
)
from pipeline.config import Config
from pipeline.data_sample import (
    FORMATS,
    LETOR_DOCID,
    LETOR_LABEL,
    LETOR_QID,
    Sample,
    SampleError,
    file_format,
    flatten_lists,
    read_sample,
)

# The tag keys modules.features interprets (role, default, transform, buckets, oov).
# modules.features exposes the role and transform values (Role, Transform) but no
# constant for the keys, so they are listed here; keep in step with _feature_from_proto.
TAG_KEYS = ("role", "default", "transform", "buckets", "oov")
TAG_VALUES = {"role": tuple(r.value for r in Role), "transform": tuple(t.value for t in Transform)}
SAMPLE_ROWS = 200  # first rows read from each input file
MAX_FILES_CHECKED = 100
_NAMED = ("csv", "jsonl", "parquet")  # formats whose columns are named


class PreflightError(ValueError):
    """The run would fail or silently misbehave; the message names the file, feature or key."""


@dataclasses.dataclass
class PreflightReport:
    feature_set: FeatureSet
    files: list[str]
    span: int
    version: int | None
    warnings: list[str]


def _suggest(word: str, known) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def check_schema(path: str) -> FeatureSet:
    """The schema's features; raises PreflightError naming the file and the feature."""
    from tfx.dsl.io import fileio

    if not fileio.exists(path):
        raise PreflightError(f"schema file '{path}' does not exist")
    with fileio.open(path, "r") as handle:
        text = handle.read()
    try:
        schema = text_format.Parse(text, schema_pb2.Schema())
    except text_format.ParseError as error:
        raise PreflightError(f"schema {path}: not a text-format Schema: {error}") from None
    for feature in schema.feature:
        for tag in feature.annotation.tag:
            key, sep, value = tag.partition(":")
            if not sep:
                raise PreflightError(
                    f"schema {path}: feature '{feature.name}': tag '{tag}' is not of the form key:value"
                )
            if key not in TAG_KEYS:
                raise PreflightError(
                    f"schema {path}: feature '{feature.name}': unknown tag key '{key}' in '{tag}' "
                    f"(known: {', '.join(TAG_KEYS)}){_suggest(key, TAG_KEYS)}"
                )
            known = TAG_VALUES.get(key)
            if known and value.strip() not in known:
                raise PreflightError(
                    f"schema {path}: feature '{feature.name}': unknown {key} '{value.strip()}' in '{tag}' "
                    f"(known: {', '.join(known)}){_suggest(value.strip(), known)}"
                )
    try:
        return feature_set_from_schema(schema)
    except SchemaError as error:
        raise PreflightError(f"schema {path}: {error}") from None


def check_config_maps(config: Config, features: FeatureSet, schema_file: str) -> None:
    """``examples.columns``, ``examples.letor_features``, ``transform.overrides`` and
    ``evaluation.slices`` against the schema."""
    names = [f.name for f in features.features]
    model = [f.name for f in features.features if f.is_model_input]

    def unknown(key: str, name: str, allowed: list[str]) -> PreflightError:
        return PreflightError(
            f"config '{key}' names '{name}', which is not a feature of the schema "
            f"{schema_file}{_suggest(name, allowed)}"
        )

    for name in config.examples.columns:
        if name not in names:
            raise unknown("examples.columns", name, names)
    for index, name in config.examples.letor_features.items():
        if not str(index).isdigit():
            raise PreflightError(f"config 'examples.letor_features': key '{index}' is not a LETOR feature index")
        if name not in names:
            raise unknown(f"examples.letor_features.{index}", name, names)
    for name, transform in config.transform.overrides.items():
        if name not in names:
            raise unknown("transform.overrides", name, names)
        if name not in model:
            raise PreflightError(f"config 'transform.overrides': '{name}' is not a context or document feature")
        try:
            check_transform(name, features[name].dtype, Transform(transform))
        except ValueError as error:
            known = [t.value for t in Transform]
            if isinstance(error, SchemaError):
                raise PreflightError(f"config 'transform.overrides': {error}") from None
            raise PreflightError(
                f"config 'transform.overrides.{name}': unknown transform '{transform}' "
                f"(known: {', '.join(known)}){_suggest(transform, known)}"
            ) from None
    context = [f.name for f in features.context_protos]
    for name in config.evaluation.slices:
        if name not in names:
            raise unknown("evaluation.slices", name, names)
        if name not in context:
            raise PreflightError(
                f"config 'evaluation.slices': '{name}' is not a context feature (slices are per list; "
                f"context features: {', '.join(context)})"
            )
    check_position_bias(config, features, schema_file)


def check_position_bias(config: Config, features: FeatureSet, schema_file: str) -> None:
    """``training.position_bias`` needs a position; ``training.bias_features`` are model features of a tower."""
    training = config.training
    if training.position_bias != "none" and features.single(Role.POSITION) is None:
        raise PreflightError(
            f"config 'training.position_bias' is {training.position_bias}, but the schema {schema_file} has no "
            "'role:position' feature (the display position of each document)"
        )
    if training.bias_features and training.position_bias != "bias_tower":
        raise PreflightError(
            f"config 'training.bias_features' is set but 'training.position_bias' is {training.position_bias}: "
            "bias features are inputs of the bias tower only"
        )
    model = [f.name for f in features.features if f.is_model_input]
    for name in training.bias_features:
        if name not in model:
            raise PreflightError(
                f"config 'training.bias_features' names '{name}', which is not a context or document feature of "
                f"the schema {schema_file}{_suggest(name, model)}"
            )


def position_bias_warnings(config: Config) -> list[str]:
    """Under ``ipw`` a gate on per-list NDCG mostly ignores the propensities (README: Position bias)."""
    metric = config.evaluation.metric
    if config.training.position_bias == "ipw" and metric.startswith("ndcg_"):
        return [
            f"config 'evaluation.metric' is {metric} with 'training.position_bias' ipw: per-list normalisation "
            "cancels the propensity weights in one-click lists, so the gate favours the logged order; "
            "use dcg_10 (the counterfactual DCG)"
        ]
    return []


def resolve_input_files(config: Config) -> tuple[list[str], int, int | None]:
    """The files ExampleGen would read for the configured span: (files, span, version)."""
    from tfx.dsl.io import fileio
    from tfx.proto import example_gen_pb2

    from components.elwc_example_gen.driver import ElwcInputProcessor, SpanNotFoundError
    from pipeline.pipeline import span_range_config

    root, pattern = config.data_root, config.examples.input_pattern
    where = f"data root '{root}' (input pattern '{pattern}')"
    if not fileio.exists(root):
        raise PreflightError(f"{where}: the data root does not exist")
    if not fileio.isdir(root):
        raise PreflightError(f"{where}: the data root is a file, not a folder")
    if not fileio.listdir(root):
        raise PreflightError(f"{where}: the data root is empty")
    splits = [example_gen_pb2.Input.Split(name="single_split", pattern=pattern)]
    try:
        processor = ElwcInputProcessor(root, splits, span_range_config(config.examples.span))
        span, version = processor.resolve_span_and_version()
    except SpanNotFoundError as error:
        raise PreflightError(str(error)) from None
    except ValueError as error:  # e.g. --span with a pattern without {SPAN}
        raise PreflightError(f"{where}: {error}") from None
    resolved = processor.get_pattern_for_span_version(pattern, span, version)
    files = sorted(f for f in fileio.glob(os.path.join(root, resolved)) if not fileio.isdir(f))
    if not files:
        raise PreflightError(f"{where}: no files match '{resolved}'")
    return files, span, version


def _columns_for(features: FeatureSet, config: Config, fmt: str) -> dict[str, str]:
    """Schema feature -> the column/key it is read from in files of this format."""
    if fmt == "letor":
        mapping = {features.label.name: LETOR_LABEL, features.query_id.name: LETOR_QID}
        doc_id = features.single(Role.DOC_ID)
        if doc_id is not None:
            mapping[doc_id.name] = LETOR_DOCID
        from components.elwc_example_gen.formats import FormatOptions

        letor = FormatOptions(letor_features=dict(config.examples.letor_features)).letor_map(features)
        for index, name in letor.items():
            mapping.setdefault(name, index)
        return mapping
    if fmt == "elwc":
        return {f.name: f.name for f in features.features}
    return {f.name: config.examples.columns.get(f.name, f.name) for f in features.features}


def check_file(path: str, sample: Sample, features: FeatureSet, config: Config) -> set[str]:
    """Raises unless the first rows carry query id, label and a model feature; returns the features seen."""
    columns = _columns_for(features, config, sample.format)
    qid, label = features.query_id.name, features.label.name
    events = config.examples.events

    def described(name: str) -> str:
        column = columns[name]
        if sample.format == "letor":
            return {LETOR_QID: "'qid:' tokens", LETOR_LABEL: "a leading label"}.get(column, f"index {column}")
        return f"'{column}'" if column == name else f"column '{column}' (feature '{name}')"

    if not sample.num_rows:
        raise PreflightError(f"{path}: no data rows")
    required = [label] if sample.format == "elwc" else [qid, label]  # ELWC lists may lack a query id
    if events is not None:  # the label is made from the events, joined on the item id
        doc_id = features.single(Role.DOC_ID)
        required = [qid] + ([doc_id.name] if events.input_pattern is not None and doc_id else [])
        if events.input_pattern is None:
            for column in events.labels:
                if column not in sample.header:
                    raise PreflightError(
                        f"{path}: config 'examples.events.labels' names the outcome column '{column}', which is not "
                        f"in the file (found: {', '.join(sample.header[:12])}){_suggest(column, sample.header)}"
                    )
    for name in required:
        if not sample.present(columns[name]):
            hint = f" (map it with examples.columns: {{{name}: <column>}})" if sample.format in _NAMED else ""
            found = ", ".join(sample.header[:12]) + (", ..." if len(sample.header) > 12 else "")
            raise PreflightError(
                f"{path}: the first {sample.num_rows} rows have no {features[name].role.value} "
                f"{described(name)}; found: {found or 'nothing'}{hint}"
            )
    model = [f for f in features.features if f.is_model_input]
    seen = {f.name for f in model if sample.present(columns[f.name])}
    if not seen:
        raise PreflightError(
            f"{path}: none of the {len(model)} model features occurs in the first {sample.num_rows} rows "
            f"(looked for {', '.join(described(f.name) for f in model[:5])}{', ...' if len(model) > 5 else ''})"
        )
    return seen


def check_events_config(config: Config, features: FeatureSet, schema_file: str) -> None:
    """``examples.events`` against the schema: join keys exist, grades fit the label's domain."""
    events = config.examples.events
    if events is None:
        return
    if features.single(Role.DOC_ID) is None:
        raise PreflightError(
            f"config 'examples.events': the schema {schema_file} has no role:doc_id feature (the item id the "
            "events are joined on, with the role:query_id request id)"
        )
    label = features.label
    for kind, grade in events.labels.items():
        if not isinstance(grade, int) or isinstance(grade, bool):
            raise PreflightError(f"config 'examples.events.labels.{kind}' = {grade!r} is not an integer grade")
        if not label.in_domain(float(grade)):
            raise PreflightError(
                f"config 'examples.events.labels.{kind}' = {grade} is outside the domain "
                f"[{label.min_value}, {label.max_value}] of the label feature '{label.name}' in {schema_file}"
            )


def check_events_files(config: Config, features: FeatureSet, span: int, version: int | None) -> list[str]:
    """The events files of the span: present, with the key, event (and timestamp) columns; warnings."""
    from tfx.dsl.io import fileio

    from components.elwc_example_gen.events import EventsConfigError, resolve_pattern

    events = config.examples.events
    if events is None or events.input_pattern is None:
        return []
    try:
        resolved = resolve_pattern(events.input_pattern, span, version)
    except EventsConfigError as error:
        raise PreflightError(str(error)) from None
    files = sorted(f for f in fileio.glob(os.path.join(config.data_root, resolved)) if not fileio.isdir(f))
    if not files:
        raise PreflightError(
            f"config 'examples.events.input_pattern' = '{events.input_pattern}': no events files match "
            f"'{resolved}' under data root '{config.data_root}' (span {span})"
        )
    qid, doc_id = features.query_id.name, features.single(Role.DOC_ID).name
    wanted = {
        "examples.columns.query_id": config.examples.columns.get(qid, qid),
        "examples.columns.doc_id": config.examples.columns.get(doc_id, doc_id),
        "examples.events.event_column": events.event_column,
    }
    if events.timestamp_column:
        wanted["examples.events.timestamp_column"] = events.timestamp_column
    unknown: dict[str, int] = {}
    for path in files[:MAX_FILES_CHECKED]:
        fmt = file_format(path, events.format)
        if fmt not in _NAMED:
            raise PreflightError(
                f"{path}: config 'examples.events.format': events files must be {', '.join(_NAMED)} "
                f"(set examples.events.format)"
            )
        try:
            sample = read_sample(path, fmt, SAMPLE_ROWS)
        except SampleError as error:
            raise PreflightError(str(error)) from None
        for key, column in wanted.items():
            if column not in sample.header:
                found = ", ".join(sample.header[:12])
                raise PreflightError(
                    f"{path}: config '{key}': the first {sample.num_rows} rows have no column '{column}' "
                    f"(found: {found or 'nothing'}){_suggest(column, sample.header)}"
                )
            if sample.num_rows and key != "examples.events.timestamp_column" and not sample.present(column):
                raise PreflightError(
                    f"{path}: config '{key}': column '{column}' is empty in the first {sample.num_rows} rows"
                )
        for value in sample.columns.get(events.event_column, []):
            if isinstance(value, str) and value.strip() and value.strip() not in events.labels:
                unknown[value.strip()] = unknown.get(value.strip(), 0) + 1
    if not unknown:
        return []
    listed = ", ".join(f"{kind} ({count})" for kind, count in sorted(unknown.items()))
    return [
        f"event types in the first rows of the events files that config 'examples.events.labels' does not map "
        f"(they will be ignored): {listed}"
    ]


def preflight(config: Config, schema_file: str) -> PreflightReport:
    """All checks; raises PreflightError on the first problem, returns warnings otherwise."""
    features = check_schema(schema_file)
    check_config_maps(config, features, schema_file)
    check_events_config(config, features, schema_file)
    files, span, version = resolve_input_files(config)
    event_warnings = check_events_files(config, features, span, version)
    seen: set[str] = set()
    for path in files[:MAX_FILES_CHECKED]:
        fmt = file_format(path, config.examples.format)
        if fmt is None:
            raise PreflightError(
                f"{path}: cannot infer the input format from the extension; set examples.format "
                f"(--input-format) to one of {', '.join(FORMATS)}"
            )
        try:
            sample = read_sample(path, fmt, SAMPLE_ROWS)
            if config.examples.documents_field:
                sample = flatten_lists(sample, config.examples.documents_field)
        except SampleError as error:
            raise PreflightError(str(error)) from None
        seen |= check_file(path, sample, features, config)
    never = [f.name for f in features.features if f.is_model_input and f.name not in seen]
    warnings = list(event_warnings) + position_bias_warnings(config)
    if never:
        checked = min(len(files), MAX_FILES_CHECKED)
        warnings.append(
            f"{len(never)} schema feature(s) never occur in the first {SAMPLE_ROWS} rows of the {checked} input "
            f"file(s) and would always take their default: {', '.join(never)}"
        )
    return PreflightReport(features, files, span, version, warnings)
