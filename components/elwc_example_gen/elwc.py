"""Grouping parsed rows of one query into an ExampleListWithContext proto.

The row-at-a-time reference (the benchmark's baseline loop, unit tests); the
Beam executor builds the same records column-wise (``pieces``).
"""

from __future__ import annotations

from collections.abc import Iterable

import tensorflow as tf
from tensorflow_serving.apis import input_pb2

from components.elwc_example_gen.rows import ParsedRow, Value


def _set_feature(features: tf.train.Features, name: str, value: Value) -> None:
    feature = features.feature[name]
    if isinstance(value, bytes):
        feature.bytes_list.value.append(value)
    elif isinstance(value, int):
        feature.int64_list.value.append(value)
    else:
        feature.float_list.value.append(value)


def elwc_from_values(
    context: dict[str, Value], documents: Iterable[dict[str, Value]]
) -> input_pb2.ExampleListWithContext:
    """An ELWC from plain values: bytes -> bytes_list, int -> int64_list, float -> float_list.

    A feature absent from a dict is absent from the proto (a missing value).
    """
    elwc = input_pb2.ExampleListWithContext()
    for name, value in context.items():
        _set_feature(elwc.context.features, name, value)
    for document in documents:
        example = elwc.examples.add()
        for name, value in document.items():
            _set_feature(example.features, name, value)
    return elwc


def build_elwc(rows: Iterable[ParsedRow], max_list_size: int | None = None) -> tuple[bytes, int, int]:
    """Serialized ELWC of one query's rows, documents in ``sort_key`` order.

    The context comes from the first row in that order. Lists longer than
    ``max_list_size`` keep their first documents (by position). Returns
    (serialized record, documents written, documents cut). Serialization is
    deterministic, so the hash-based split is stable across runs.
    """
    ordered = sorted(rows, key=lambda row: row.sort_key)
    kept = ordered if not max_list_size else ordered[:max_list_size]
    elwc = elwc_from_values(kept[0].context, (row.document for row in kept))
    return elwc.SerializeToString(deterministic=True), len(kept), len(ordered) - len(kept)
