"""Existing ELWC TFRecords (e.g. written by another tool): validated against the schema, not copied.

Each record is parsed and every feature checked against the schema: the value
kind must match the feature's type (an INT value is accepted for a FLOAT
feature), numeric values must lie in the feature's domain, a document needs a
label. A bad document goes to the dead letter (reason, file, record and
document index) and is dropped from its list; a bad context drops the whole
list. Features the schema does not declare (or declares for the other side,
context vs. document) are dropped and counted. A list without a query id gets
one derived from a fingerprint of its bytes (``elwc-<hex>``), written into the
context, so that the split by query hash still applies; the count is reported.
"""

from __future__ import annotations

import collections
import hashlib
import math

import tensorflow as tf
from tensorflow_serving.apis import input_pb2

from components.elwc_example_gen.columns import BAD_VALUE, LABEL_OUT_OF_RANGE, MISSING_LABEL
from components.elwc_example_gen.formats import dead_letter_entry
from components.elwc_example_gen.pieces import Piece
from modules.features import Dtype, Feature, FeatureSet, Role

_KINDS = {Dtype.INT: ("int64_list",), Dtype.FLOAT: ("float_list", "int64_list"), Dtype.BYTES: ("bytes_list",)}


def read_tfrecords(data: bytes, source: str) -> list[bytes]:
    """Records of a plain or GZIP TFRecord file (detected from its first bytes)."""
    compression = "GZIP" if data[:2] == b"\x1f\x8b" else ""
    import tempfile

    # tf_record_iterator needs a path; local copies keep this working for any filesystem URI.
    with tempfile.NamedTemporaryFile(suffix=".tfrecord") as handle:
        handle.write(data)
        handle.flush()
        options = tf.io.TFRecordOptions(compression_type=compression)
        try:
            return list(tf.compat.v1.io.tf_record_iterator(handle.name, options=options))
        except tf.errors.DataLossError as error:
            raise ValueError(f"{source}: not a readable {compression or 'plain'} TFRecord file: {error}") from None


def _check_feature(feature: Feature, value: tf.train.Feature) -> str | None:
    kind = value.WhichOneof("kind")
    if kind is None:
        return None
    if kind not in _KINDS[feature.dtype]:
        return f"feature '{feature.name}' is a {kind}, the schema says {feature.dtype.value}"
    if feature.dtype == Dtype.BYTES:
        return None
    values = getattr(value, kind).value
    for number in values:
        if isinstance(number, float) and not math.isfinite(number):
            return f"feature '{feature.name}': {number} is not finite"
        if not feature.in_domain(float(number)):
            return f"feature '{feature.name}': {number} is outside [{feature.min_value}, {feature.max_value}]"
    return None


def _clean(
    features: tf.train.Features, allowed: dict[str, Feature], dropped: collections.Counter, label: Feature | None
) -> tuple[str, str] | None:
    """Drops undeclared/empty features in place; returns (reason, detail) if a declared one is bad."""
    for name in list(features.feature):
        feature = allowed.get(name)
        value = features.feature[name]
        if feature is None:
            dropped[name] += 1
            del features.feature[name]
            continue
        if value.WhichOneof("kind") is None or not len(getattr(value, value.WhichOneof("kind")).value):
            del features.feature[name]  # an empty feature is a missing value
            continue
        problem = _check_feature(feature, value)
        if problem:
            reason = LABEL_OUT_OF_RANGE if feature.role == Role.LABEL and "outside" in problem else BAD_VALUE
            return reason, problem
        if feature.dtype == Dtype.FLOAT and value.WhichOneof("kind") == "int64_list":
            numbers = list(value.int64_list.value)
            value.float_list.value[:] = [float(n) for n in numbers]
    if label is not None and label.name not in features.feature:
        return MISSING_LABEL, f"feature '{label.name}' is missing"
    return None


def _sort_key(example: tf.train.Example, position: Feature | None, doc_id: Feature | None, index: int):
    features = example.features.feature
    pos = features[position.name].int64_list.value if position and position.name in features else []
    ident = features[doc_id.name].bytes_list.value if doc_id and doc_id.name in features else []
    return (not pos, pos[0] if pos else 0, ident[0] if ident else b"", index)


def elwc_file_pieces(data: bytes, source: str, feature_set: FeatureSet, max_list_size: int):
    """(pieces, dead-letter entries, stats) of one ELWC TFRecord file."""
    context_features = {f.name: f for f in feature_set.context_protos}
    document_features = {f.name: f for f in feature_set.document_protos}
    query_id = feature_set.query_id
    label = feature_set.label
    position = feature_set.single(Role.POSITION)
    doc_id = feature_set.single(Role.DOC_ID)
    pieces: list[tuple[bytes, Piece]] = []
    dead: list[dict] = []
    dropped: collections.Counter = collections.Counter()
    missing: collections.Counter = collections.Counter()
    rows = synthesized = 0
    for record_number, record in enumerate(read_tfrecords(data, source), start=1):
        try:
            elwc = input_pb2.ExampleListWithContext.FromString(record)
        except Exception as error:  # noqa: BLE001 - protobuf raises DecodeError
            dead.append(dead_letter_entry("unparseable_record", source, record_number, f"not an ELWC: {error}"))
            rows += 1
            continue
        rows += len(elwc.examples)
        problem = _clean(elwc.context.features, context_features, dropped, None)
        if problem:
            dead.append(dead_letter_entry(problem[0], source, record_number, f"context: {problem[1]}"))
            continue
        if query_id.name not in elwc.context.features.feature:
            qid = b"elwc-" + hashlib.sha256(record).hexdigest()[:16].encode()
            elwc.context.features.feature[query_id.name].bytes_list.value.append(qid)
            synthesized += 1
        qid = elwc.context.features.feature[query_id.name].bytes_list.value[0]
        kept = []
        for doc_number, example in enumerate(elwc.examples, start=1):
            problem = _clean(example.features, document_features, dropped, label)
            if problem:
                entry = dead_letter_entry(problem[0], source, record_number, f"document {doc_number}: {problem[1]}")
                entry["document"] = doc_number
                dead.append(entry)
                continue
            for name in document_features:
                if name not in example.features.feature and name != label.name:
                    missing[name] += 1
            kept.append((_sort_key(example, position, doc_id, doc_number), example))
        for name in context_features:
            if name not in elwc.context.features.feature:
                missing[name] += len(kept)
        if not kept:
            continue
        kept.sort(key=lambda item: item[0])
        size = len(kept)
        if max_list_size:
            kept = kept[:max_list_size]
        keys = [(k[0], k[1], k[2], record_number * 100_000 + k[3]) for k, _ in kept]
        docs = [example.SerializeToString(deterministic=True) for _, example in kept]
        context = elwc.context.SerializeToString(deterministic=True)
        pieces.append((qid, Piece(source, context, keys, docs, size - len(kept))))
    missing.pop(query_id.name, None)
    stats = {
        "rows": rows,
        "dropped_features": dict(dropped),
        "missing": dict(missing),
        "synthesized_query_ids": synthesized,
    }
    return pieces, dead, stats
