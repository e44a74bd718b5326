"""One file's good rows -> per-query *pieces* of an ELWC, encoded in C++.

A piece is the part of one query's list found in one file: its context
``tf.train.Example`` (from the query's first document), its documents as
serialized ``tf.train.Example`` in list order, and their sort keys. Rows are
sorted and grouped with ``pyarrow`` and encoded with tfx_bsl's
``RecordBatchToExamples`` (C++), one call per pattern of missing values so that
a missing value is absent from the proto, never an empty feature. The Beam
``GroupByKey`` then only moves one element per (query, file), and the common
case (a query lives in one file) needs no re-parsing at all.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tfx_bsl.coders import example_coder

from components.elwc_example_gen.columns import TypedColumns
from modules.features import FeatureSet, Role

# (position missing, position, doc id, line): documents with a position first, by position, then doc id.
SortKey = tuple[bool, int, bytes, int]


class Piece(NamedTuple):
    source: str
    context: bytes
    keys: list[SortKey]
    docs: list[bytes]
    cut: int  # documents of this piece already cut by max_list_size


def encode_examples(columns: dict[str, pa.Array], rows: np.ndarray) -> list[bytes]:
    """Serialized tf.Example of ``rows``, holding only the non-missing values of ``columns``."""
    out: list[bytes] = [b""] * len(rows)
    if not len(rows):
        return out
    names = list(columns)
    taken = [columns[name].take(pa.array(rows)) for name in names]
    # One bit per feature: which values are present. Rows sharing a pattern are encoded together.
    pattern = np.zeros(len(rows), np.int64)
    for bit, column in enumerate(taken):
        present = ~column.is_null().to_numpy(zero_copy_only=False)
        pattern |= present.astype(np.int64) << bit
    order = np.argsort(pattern, kind="stable")
    boundaries = np.flatnonzero(np.diff(pattern[order])) + 1
    for group in np.split(order, boundaries):
        bits = int(pattern[group[0]])
        arrays, fields = [], []
        index = pa.array(group)
        for bit, (name, column) in enumerate(zip(names, taken, strict=True)):
            if bits >> bit & 1:
                values = column.take(index)
                arrays.append(pa.ListArray.from_arrays(pa.array(np.arange(len(group) + 1, dtype=np.int32)), values))
                fields.append(name)
        if arrays:
            encoded = example_coder.RecordBatchToExamples(pa.RecordBatch.from_arrays(arrays, fields))
        else:
            encoded = [b""] * len(group)
        for position, record in zip(group.tolist(), encoded, strict=True):
            out[position] = record
    return out


def sort_key_columns(columns: dict[str, pa.Array], feature_set: FeatureSet, num_rows: int):
    position = feature_set.single(Role.POSITION)
    doc_id = feature_set.single(Role.DOC_ID)
    pos = columns.get(position.name) if position else None
    ident = columns.get(doc_id.name) if doc_id else None
    pos = pos if pos is not None else pa.nulls(num_rows, pa.int64())
    ident = ident if ident is not None else pa.nulls(num_rows, pa.binary())
    return pc.is_null(pos), pc.fill_null(pos.cast(pa.int64()), 0), pc.fill_null(ident, b"")


def file_pieces(
    typed: TypedColumns, lines: np.ndarray, source: str, feature_set: FeatureSet, max_list_size: int
) -> list[tuple[bytes, Piece]]:
    """(query id, piece) for every query of the file's good rows."""
    good = np.flatnonzero(typed.good_mask)
    if not len(good):
        return []
    columns = {name: column.take(pa.array(good)) for name, column in typed.columns.items()}
    lines = lines[good]
    n = len(good)
    query_ids = columns[feature_set.query_id.name]
    pos_missing, pos, ident = sort_key_columns(columns, feature_set, n)
    table = pa.table({"q": query_ids, "m": pos_missing, "p": pos, "d": ident, "l": pa.array(lines)})
    order = pc.sort_indices(
        table,
        sort_keys=[("q", "ascending"), ("m", "ascending"), ("p", "ascending"), ("d", "ascending"), ("l", "ascending")],
    ).to_numpy()
    sorted_q = query_ids.take(pa.array(order))
    change = pc.not_equal(sorted_q.slice(1), sorted_q.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    starts = np.concatenate(([0], np.flatnonzero(change) + 1))
    ends = np.concatenate((starts[1:], [n]))

    context_names = [f.name for f in feature_set.context_protos if f.name in columns]
    document_names = [f.name for f in feature_set.document_protos if f.name in columns]
    if max_list_size:
        keep = np.concatenate([order[s : min(e, s + max_list_size)] for s, e in zip(starts, ends, strict=True)])
    else:
        keep = order
    docs = encode_examples({name: columns[name] for name in document_names}, keep)
    contexts = encode_examples({name: columns[name] for name in context_names}, order[starts])
    keys = list(
        zip(
            pos_missing.take(pa.array(keep)).to_pylist(),
            pos.take(pa.array(keep)).to_pylist(),
            ident.take(pa.array(keep)).to_pylist(),
            lines[keep].tolist(),
            strict=True,
        )
    )
    qids = sorted_q.take(pa.array(starts)).to_pylist()
    pieces = []
    offset = 0
    for qid, context, start, end in zip(qids, contexts, starts.tolist(), ends.tolist(), strict=True):
        size = end - start
        kept = min(size, max_list_size) if max_list_size else size
        pieces.append(
            (qid, Piece(source, context, keys[offset : offset + kept], docs[offset : offset + kept], size - kept))
        )
        offset += kept
    return pieces


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def frame_elwc(context: bytes, docs: list[bytes]) -> bytes:
    """Serialized ExampleListWithContext from serialized parts (field 1: examples, field 2: context)."""
    parts = []
    for doc in docs:
        parts.append(b"\x0a" + _varint(len(doc)))
        parts.append(doc)
    parts.append(b"\x12" + _varint(len(context)))
    parts.append(context)
    return b"".join(parts)


def assemble(pieces: list[Piece], max_list_size: int) -> tuple[bytes, int, int]:
    """One query's pieces -> (serialized ELWC, documents written, documents cut by max_list_size).

    Documents of all pieces are merged in sort-key order (ties broken by source file, then line),
    the context comes from the first document's row, and only the first ``max_list_size`` are kept.
    """
    cut = sum(piece.cut for piece in pieces)
    if len(pieces) == 1:
        piece = pieces[0]
        return frame_elwc(piece.context, piece.docs), len(piece.docs), cut
    merged = sorted(
        (
            (key, piece.source, index, doc)
            for index, piece in enumerate(pieces)
            for key, doc in zip(piece.keys, piece.docs, strict=True)
        ),
        key=lambda item: (item[0], item[1]),
    )
    context = pieces[merged[0][2]].context
    docs = [item[3] for item in merged]
    if max_list_size and len(docs) > max_list_size:
        cut += len(docs) - max_list_size
        docs = docs[:max_list_size]
    return frame_elwc(context, docs), len(docs), cut
