"""One chunk's good rows -> its queries' lists, encoded in bulk; *pieces* of queries found elsewhere too.

Rows are sorted into list order and grouped by query with ``pyarrow``, and every
document and context is encoded at once (:mod:`encode`; a missing value is
absent from the proto, never an empty feature). A query that lives in this chunk
only is written as a complete ELWC (:meth:`ChunkLists.records`). Otherwise the
chunk contributes a *piece*: the query's context ``tf.train.Example`` (from its
first document), its serialized documents in list order and their sort keys;
the Beam ``GroupByKey`` merges the pieces of a query (:func:`assemble`).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from components.elwc_example_gen.columns import TypedColumns
from components.elwc_example_gen.encode import encode_examples, frame_lists, varint_bytes
from modules.features import FeatureSet, Role

# (position missing, position, doc id, line): documents with a position first, by position, then doc id.
SortKey = tuple[bool, int, bytes, int]


class Piece(NamedTuple):
    source: str
    context: bytes
    keys: list[SortKey]
    docs: list[bytes]
    cut: int  # documents of this piece already cut by max_list_size


def sort_key_columns(columns: dict[str, pa.Array], feature_set: FeatureSet, num_rows: int):
    position = feature_set.single(Role.POSITION)
    doc_id = feature_set.single(Role.DOC_ID)
    pos = columns.get(position.name) if position else None
    ident = columns.get(doc_id.name) if doc_id else None
    pos = pos if pos is not None else pa.nulls(num_rows, pa.int64())
    ident = ident if ident is not None else pa.nulls(num_rows, pa.binary())
    return pc.is_null(pos), pc.fill_null(pos.cast(pa.int64()), 0), pc.fill_null(ident, b"")


@dataclasses.dataclass
class ChunkLists:
    """Every query's documents in one chunk of rows, in list order, encoded.

    List ``i`` (query ids ascending) has context ``contexts[i]`` and documents
    ``docs[offsets[i]:offsets[i + 1]]`` (already cut to ``max_list_size``; ``cut[i]`` were dropped).
    """

    query_ids: list[bytes]
    contexts: pa.Array
    docs: pa.Array
    offsets: np.ndarray
    keys: tuple  # (position missing, position, doc id, line) of each kept document
    cut: np.ndarray

    def records(self, lists: np.ndarray) -> pa.Array:
        """Serialized ELWC of the given lists (complete lists: no other chunk holds their query)."""
        starts, ends = self.offsets[lists], self.offsets[lists + 1]
        offsets = np.concatenate(([0], np.cumsum(ends - starts)))
        if len(lists) and np.all(np.diff(lists) == 1):  # consecutive lists (most often): slices, no copy
            first, count = int(starts[0]), int(ends[-1] - starts[0])
            return frame_lists(self.contexts.slice(int(lists[0]), len(lists)), self.docs.slice(first, count), offsets)
        rows = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)]) if len(lists) else []
        contexts = self.contexts.take(pa.array(lists, pa.int64()))
        return frame_lists(contexts, self.docs.take(pa.array(rows, pa.int64())), offsets)

    def pieces(self, lists: np.ndarray, source: str) -> list[tuple[bytes, Piece]]:
        """(query id, piece) of the given lists, to be merged with the same queries' pieces elsewhere."""
        out = []
        pos_missing, pos, ident, line = self.keys
        for i in lists.tolist():
            s, e = int(self.offsets[i]), int(self.offsets[i + 1])
            keys = list(
                zip(pos_missing[s:e].tolist(), pos[s:e].tolist(), ident[s:e].tolist(), line[s:e].tolist(), strict=True)
            )
            docs = self.docs.slice(s, e - s).to_pylist()
            piece = Piece(source, self.contexts[i].as_py(), keys, docs, int(self.cut[i]))
            out.append((self.query_ids[i], piece))
        return out


def chunk_lists(
    typed: TypedColumns, lines: np.ndarray, feature_set: FeatureSet, max_list_size: int
) -> ChunkLists | None:
    """The chunk's good rows grouped by query, sorted into list order and encoded (None if no good row)."""
    good = np.flatnonzero(typed.good_mask)
    if not len(good):
        return None
    if len(good) < len(typed.bad):
        columns = {name: column.take(pa.array(good)) for name, column in typed.columns.items()}
        lines = lines[good]
    else:
        columns = dict(typed.columns)
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
    sizes = ends - starts
    kept = np.minimum(sizes, max_list_size) if max_list_size else sizes
    keep = order if not max_list_size else np.concatenate([order[s : s + k] for s, k in zip(starts, kept, strict=True)])
    take = pa.array(keep)
    docs = encode_examples(
        {f.name: (f.dtype, columns[f.name]) for f in feature_set.document_protos if f.name in columns},
        n,
        rows=keep,
    )
    contexts = encode_examples(
        {f.name: (f.dtype, columns[f.name]) for f in feature_set.context_protos if f.name in columns},
        n,
        rows=order[starts],
    )
    keys = (
        pos_missing.take(take).to_numpy(zero_copy_only=False),
        pos.take(take).to_numpy(zero_copy_only=False),
        np.asarray(ident.take(take).to_pylist(), dtype=object),
        lines[keep],
    )
    return ChunkLists(
        query_ids=sorted_q.take(pa.array(starts)).to_pylist(),
        contexts=contexts,
        docs=docs,
        offsets=np.concatenate(([0], np.cumsum(kept))),
        keys=keys,
        cut=sizes - kept,
    )


def frame_elwc(context: bytes, docs: list[bytes]) -> bytes:
    """Serialized ExampleListWithContext from serialized parts (field 1: examples, field 2: context)."""
    parts = []
    for doc in docs:
        parts.append(b"\x0a" + varint_bytes(len(doc)))
        parts.append(doc)
    parts.append(b"\x12" + varint_bytes(len(context)))
    parts.append(context)
    return b"".join(parts)


def assemble(pieces: list[Piece], max_list_size: int) -> tuple[bytes, int, int]:
    """One query's pieces -> (serialized ELWC, documents written, documents cut by max_list_size).

    Documents of all pieces are merged by position, doc id, then source file and line,
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
        # (position missing, position, doc id), then source file, then line.
        key=lambda item: (item[0][:3], item[1], item[0][3]),
    )
    context = pieces[merged[0][2]].context
    docs = [item[3] for item in merged]
    if max_list_size and len(docs) > max_list_size:
        cut += len(docs) - max_list_size
        docs = docs[:max_list_size]
    return frame_elwc(context, docs), len(docs), cut
