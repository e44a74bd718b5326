"""Parsing flat log rows into typed values, as the schema declares them.

Pure Python, no Beam. ``parse_value`` holds the per-value rules (missing tokens,
integer and domain checks) that the column-wise reader (``columns``) falls back
on to find exactly which rows are bad. ``parse_row`` / ``ColumnLayout`` are the
row-at-a-time reference path: the benchmark's baseline loop and the unit tests
use them. A value that is empty, ``null`` or NaN is *missing* and left out of
the record, so Transform's schema defaults apply downstream.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence

from modules.features import Dtype, Feature, FeatureSet, Role

MISSING_TOKENS = frozenset({"", "null", "NULL", "None", "nan", "NaN", "NA"})

Value = int | float | bytes
_DOCID_COMMENT = re.compile(r"docid\s*=\s*(\S+)")


class BadRowError(ValueError):
    """A row that cannot be turned into a document; the message says where and why."""

    def __init__(self, source: str, line: int, reason: str, detail: str):
        super().__init__(f"{source}:{line}: {detail}")
        self.source = source
        self.line = line
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class ParsedRow:
    """One (query, document) row: typed values of the non-missing features."""

    query_id: bytes
    context: dict[str, Value]
    document: dict[str, Value]
    sort_key: tuple
    source: str
    line: int


@dataclasses.dataclass(frozen=True)
class ColumnLayout:
    """Which CSV column holds which schema feature (from the header row)."""

    indices: dict[str, int]
    width: int

    @classmethod
    def from_header(cls, header: Sequence[str], feature_set: FeatureSet, source: str) -> ColumnLayout:
        positions = {name.strip(): i for i, name in enumerate(header)}
        required = [feature_set.query_id.name, feature_set.label.name]
        missing = [name for name in required if name not in positions]
        if missing:
            raise ValueError(f"{source}: header lacks required column(s) {missing}; header is {list(header)}")
        indices = {f.name: positions[f.name] for f in feature_set.features if f.name in positions}
        return cls(indices, len(header))


def parse_value(feature: Feature, text: str, check_domain: bool = True) -> Value | None:
    """Typed value of one cell, or None if missing; raises ValueError if unparseable (or outside the domain)."""
    text = text.strip()
    if text in MISSING_TOKENS:
        return None
    if feature.dtype == Dtype.BYTES:
        return text.encode("utf-8")
    if feature.dtype == Dtype.INT:
        number = float(text)
        if not number.is_integer():
            raise ValueError(f"'{text}' is not an integer")
        value: Value = int(number)
    else:
        value = float(text)
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise ValueError(f"'{text}' is not finite")
    if check_domain and not feature.in_domain(float(value)):
        raise ValueError(f"{value} is outside [{feature.min_value}, {feature.max_value}]")
    return value


def parse_row(cells: Sequence[str], layout: ColumnLayout, feature_set: FeatureSet, source: str, line: int) -> ParsedRow:
    if len(cells) != layout.width:
        raise BadRowError(source, line, "column_count", f"expected {layout.width} columns, found {len(cells)}")
    context: dict[str, Value] = {}
    document: dict[str, Value] = {}
    for feature in feature_set.features:
        index = layout.indices.get(feature.name)
        if index is None:
            continue
        try:
            value = parse_value(feature, cells[index])
        except ValueError as error:
            reason = "label_out_of_range" if feature.role == Role.LABEL else "bad_value"
            raise BadRowError(source, line, reason, f"column '{feature.name}': {error}") from None
        if value is None:
            continue
        (context if feature.in_context else document)[feature.name] = value

    query_feature = feature_set.query_id
    if query_feature.name not in context:
        raise BadRowError(source, line, "missing_query_id", f"column '{query_feature.name}' is empty")
    if feature_set.label.name not in document:
        raise BadRowError(source, line, "missing_label", f"column '{feature_set.label.name}' is empty")
    return ParsedRow(
        query_id=context[query_feature.name],
        context=context,
        document=document,
        sort_key=_sort_key(document, feature_set),
        source=source,
        line=line,
    )


def _sort_key(document: dict[str, Value], feature_set: FeatureSet) -> tuple:
    """Deterministic document order: position (missing last), then document id."""
    position = feature_set.single(Role.POSITION)
    doc_id = feature_set.single(Role.DOC_ID)
    pos = document.get(position.name) if position else None
    ident = document.get(doc_id.name, b"") if doc_id else b""
    return (pos is None, pos if pos is not None else 0, ident)


def parse_letor_row(
    line: str, index_to_name: dict[str, str], feature_set: FeatureSet, source: str, number: int
) -> ParsedRow | None:
    """One LETOR/SVMlight line ``label qid:Q idx:val ... [# docid = D]`` (None for a blank line).

    The row-at-a-time reference for the column-wise reader (``formats.read_letor``): an
    absent index is a missing value, the last ``qid:`` token is the query id.
    """
    body, _, comment = line.partition("#")
    tokens = body.split()
    if not tokens:
        return None
    cells = {feature_set.label.name: tokens[0]}
    for token in tokens[1:]:
        key, sep, value = token.partition(":")
        if not sep or not key:
            raise BadRowError(source, number, "unparseable_line", f"malformed token '{token}' (expected index:value)")
        if key == "qid":
            cells[feature_set.query_id.name] = value
        elif key in index_to_name:
            cells[index_to_name[key]] = value
    doc_id = feature_set.single(Role.DOC_ID)
    match = _DOCID_COMMENT.search(comment)
    if doc_id is not None and match:
        cells[doc_id.name] = match.group(1)
    names = list(cells)
    layout = ColumnLayout({name: i for i, name in enumerate(names)}, len(names))
    return parse_row([cells[name] for name in names], layout, feature_set, source, number)
