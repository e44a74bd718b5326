"""Typing a file's raw columns by the schema, whole columns at a time (pyarrow).

A reader hands over a table of raw columns (strings from CSV/LETOR/JSON, or
native types from Parquet) named by schema feature. Each column is typed and
checked in C++ (``pyarrow.compute``); only a column whose fast cast fails is
re-parsed value by value with :func:`rows.parse_value`, to find exactly which
rows are bad. The result is a typed, nullable column per feature, plus a
reason for every bad row. Missing values (empty, ``null``, NaN, absent column)
stay null, so they are left out of the proto later.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from components.elwc_example_gen.rows import MISSING_TOKENS, parse_value
from modules.features import Dtype, Feature, FeatureSet, Role

ARROW_TYPES = {Dtype.INT: pa.int64(), Dtype.FLOAT: pa.float32(), Dtype.BYTES: pa.binary()}
_MISSING = pa.array(sorted(MISSING_TOKENS))

# Dead-letter reasons (also the keys of the per-reason counters).
BAD_VALUE = "bad_value"
LABEL_OUT_OF_RANGE = "label_out_of_range"
MISSING_QUERY_ID = "missing_query_id"
MISSING_LABEL = "missing_label"
COLUMN_COUNT = "column_count"
UNPARSEABLE_LINE = "unparseable_line"


@dataclasses.dataclass
class TypedColumns:
    """Typed columns of one file; ``bad[i]`` is None for a good row, else (reason, detail)."""

    columns: dict[str, pa.Array]
    bad: list[tuple[str, str] | None]
    missing: dict[str, int]

    @property
    def good_mask(self) -> np.ndarray:
        return np.fromiter((b is None for b in self.bad), dtype=bool, count=len(self.bad))


def _normalise_strings(column: pa.Array) -> pa.Array:
    """Trimmed strings with the missing tokens turned into nulls."""
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        column = column.cast(pa.string())
    trimmed = pc.utf8_trim_whitespace(column)
    return pc.if_else(pc.is_in(trimmed, value_set=_MISSING), pa.scalar(None, trimmed.type), trimmed)


def _fast_cast(column: pa.Array, feature: Feature) -> pa.Array | None:
    """The whole column cast to the feature's type, or None if any value does not parse."""
    target = ARROW_TYPES[feature.dtype]
    try:
        if feature.dtype == Dtype.BYTES:
            return column.cast(pa.string()).cast(pa.binary())
        if feature.dtype == Dtype.INT:
            if pa.types.is_integer(column.type):
                return column.cast(pa.int64())
            as_float = column.cast(pa.float64())
            if pc.any(pc.not_equal(pc.floor(as_float), as_float)).as_py() or pc.any(pc.is_inf(as_float)).as_py():
                return None
            return as_float.cast(pa.int64())
        as_float = column.cast(pa.float64())
        if pc.any(pc.is_inf(as_float)).as_py():
            return None
        # NaN is missing, as for the text formats.
        as_float = pc.if_else(pc.is_nan(as_float), pa.scalar(None, pa.float64()), as_float)
        return as_float.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def _slow_parse(column: pa.Array, feature: Feature, bad: list, reason: str) -> pa.Array:
    """Value-by-value parse; unparseable values become nulls and mark their row bad."""
    values = []
    for i, raw in enumerate(column.to_pylist()):
        try:
            values.append(_parse_python_value(feature, raw))
        except ValueError as error:
            values.append(None)
            if bad[i] is None:
                bad[i] = (reason, f"column '{feature.name}': {error}")
    return pa.array(values, ARROW_TYPES[feature.dtype])


def _parse_python_value(feature: Feature, raw: object) -> int | float | bytes | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or isinstance(raw, list | dict):
        raise ValueError(f"{raw!r} is not a {feature.dtype.value}")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if isinstance(raw, float) and math.isnan(raw):
        return None
    return parse_value(feature, raw if isinstance(raw, str) else str(raw), check_domain=False)


def type_column(column: pa.Array, feature: Feature, bad: list) -> pa.Array:
    """One raw column typed by ``feature``; rows with unparseable or out-of-domain values are marked bad."""
    reason = LABEL_OUT_OF_RANGE if feature.role == Role.LABEL else BAD_VALUE
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_boolean(column.type) or pa.types.is_nested(column.type):
        return _slow_parse(column, feature, bad, BAD_VALUE)
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), ARROW_TYPES[feature.dtype])
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_binary(column.type):
        column = _normalise_strings(column)
    typed = _fast_cast(column, feature)
    if typed is None:
        # Some value does not parse: find which, value by value, with the rules of rows.parse_value.
        typed = _slow_parse(column, feature, bad, BAD_VALUE)
    if feature.dtype != Dtype.BYTES and (feature.min_value is not None or feature.max_value is not None):
        outside = pc.fill_null(_outside(typed, feature), False).to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(outside):
            if bad[i] is None:
                bad[i] = (
                    reason,
                    f"column '{feature.name}': {typed[i].as_py()} is outside "
                    f"[{feature.min_value}, {feature.max_value}]",
                )
    return typed


def _outside(typed: pa.Array, feature: Feature) -> pa.Array:
    checks = []
    # safe=False: an int64 beyond 2**53 is compared by its nearest float64 (a safe cast refuses it).
    values = pc.cast(typed, pa.float64(), safe=False)
    if feature.min_value is not None:
        checks.append(pc.less(values, feature.min_value))
    if feature.max_value is not None:
        checks.append(pc.greater(values, feature.max_value))
    return checks[0] if len(checks) == 1 else pc.or_(checks[0], checks[1])


def type_table(
    raw: dict[str, pa.Array], num_rows: int, feature_set: FeatureSet, bad: list | None = None
) -> TypedColumns:
    """Types every schema feature present in ``raw``; absent features are all-missing."""
    bad = bad if bad is not None else [None] * num_rows
    columns: dict[str, pa.Array] = {}
    for feature in feature_set.features:
        if feature.name in raw:
            columns[feature.name] = type_column(raw[feature.name], feature, bad)
    query_id = feature_set.query_id.name
    label = feature_set.label.name
    for name, reason in ((query_id, MISSING_QUERY_ID), (label, MISSING_LABEL)):
        column = columns.get(name)
        empty = np.ones(num_rows, bool) if column is None else column.is_null().to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(empty):
            if bad[i] is None:
                bad[i] = (reason, f"column '{name}' is empty")
    good = np.fromiter((b is None for b in bad), dtype=bool, count=num_rows)
    missing = {}
    for feature in feature_set.features:
        if feature.role in (Role.QUERY_ID, Role.LABEL):
            continue
        column = columns.get(feature.name)
        if column is None:
            missing[feature.name] = int(good.sum())
        else:
            missing[feature.name] = int((column.is_null().to_numpy(zero_copy_only=False) & good).sum())
    return TypedColumns(columns, bad, missing)
