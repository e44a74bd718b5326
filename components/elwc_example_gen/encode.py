"""Serialized ``tf.train.Example`` and ``ExampleListWithContext`` built column-wise, in bulk.

A document's proto is the concatenation, in feature-name order, of one map
entry per present feature; each entry is a constant prefix (the feature's name
and the fixed field tags) plus the value's bytes. So a whole column of entries
is built at once with numpy (varints, float bytes) and joined across features
with ``pyarrow.compute.binary_join_element_wise`` (C++), skipping nulls: a
missing value is absent from the proto, never an empty feature. The bytes are
exactly ``SerializeToString(deterministic=True)`` of the same proto (tested
against protobuf, map key order included), so the records do not depend on
which path wrote them.

Wire format (tensorflow/core/example/{example,feature}.proto)::

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }      entry { key = 1; value = 2; }
    Feature  { oneof { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    ExampleListWithContext { repeated Example examples = 1; Example context = 2; }
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modules.features import Dtype

_EMPTY = pa.scalar(b"", pa.binary())


def varint_bytes(value: int) -> bytes:
    """Protobuf's base-128 varint of a non-negative int."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varint_lengths(values: np.ndarray) -> np.ndarray:
    """Bytes of each value's varint (negative int64: 10, as protobuf writes them)."""
    unsigned = values.astype(np.int64).view(np.uint64)
    lengths = np.ones(len(unsigned), np.int64)
    for shift in range(7, 64, 7):
        lengths += (unsigned >> np.uint64(shift)) != 0
    return lengths


def _binary_from(matrix: np.ndarray, lengths: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """BinaryArray whose row i is matrix[i, :lengths[i]] (nulls where ``valid`` is False)."""
    n = len(lengths)
    keep = np.arange(matrix.shape[1]) < lengths[:, None]
    data = np.ascontiguousarray(matrix[keep])
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    validity = None
    if valid is not None and not valid.all():
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.binary(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)])


def varints(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """BinaryArray of each value's varint encoding."""
    unsigned = values.astype(np.int64).view(np.uint64)
    lengths = varint_lengths(values)
    matrix = np.empty((len(unsigned), 10), np.uint8)
    for k in range(10):
        byte = (unsigned >> np.uint64(7 * k)) & np.uint64(0x7F)
        matrix[:, k] = byte.astype(np.uint8) | np.where(k < lengths - 1, 0x80, 0).astype(np.uint8)
    return _binary_from(matrix, lengths, valid)


def _valid(column: pa.Array) -> np.ndarray:
    return ~column.is_null().to_numpy(zero_copy_only=False)


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, _EMPTY)


def feature_entries(name: str, dtype: Dtype, column: pa.Array) -> pa.Array:
    """Each row's ``Features.feature`` map entry for ``name`` (field tag and length included); null if missing."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    key = name.encode()
    key_part = b"\x0a" + varint_bytes(len(key)) + key + b"\x12"  # entry.key, then entry.value's tag
    valid = _valid(column)
    n = len(column)
    if dtype == Dtype.FLOAT:
        # value: Feature{float_list{packed [f32]}} = 12 06 0a 04 <4 bytes>, a constant 8-byte length.
        entry = key_part + b"\x08\x12\x06\x0a\x04"
        prefix = b"\x0a" + varint_bytes(len(entry) + 4) + entry
        floats = column.cast(pa.float32()).fill_null(0).to_numpy(zero_copy_only=False).astype("<f4")
        matrix = floats.view(np.uint8).reshape(n, 4)
        return _join(pa.scalar(prefix, pa.binary()), _binary_from(matrix, np.full(n, 4, np.int64), valid))
    if dtype == Dtype.INT:
        values = column.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        k = varint_lengths(values)  # 1..10 bytes: every length below fits in one byte
        # entry: key_part, len(Feature)=k+4, 1a (int64_list) k+2, 0a (packed) k, <varint>
        tail = np.empty((n, 5), np.uint8)
        tail[:, 0] = k + 4
        tail[:, 1] = 0x1A
        tail[:, 2] = k + 2
        tail[:, 3] = 0x0A
        tail[:, 4] = k
        entry_length = len(key_part) + 5 + k
        return _join(
            pa.scalar(b"\x0a", pa.binary()),
            varints(entry_length),
            pa.scalar(key_part, pa.binary()),
            _binary_from(tail, np.full(n, 5, np.int64), valid),
            varints(values),
        )
    # BYTES: Feature{bytes_list{value: s}} = 0a len(BL) [0a len(s) s]
    strings = column.cast(pa.binary())
    m = pc.binary_length(strings).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    bytes_list = 1 + varint_lengths(m) + m
    feature = 1 + varint_lengths(bytes_list) + bytes_list
    entry_length = len(key_part) + varint_lengths(feature) + feature
    return _join(
        pa.scalar(b"\x0a", pa.binary()),
        varints(entry_length),
        pa.scalar(key_part, pa.binary()),
        varints(feature),
        pa.scalar(b"\x0a", pa.binary()),
        varints(bytes_list),
        pa.scalar(b"\x0a", pa.binary()),
        varints(m),
        strings,
    )


def wrap(field_tag: bytes, messages: pa.Array) -> pa.Array:
    """Each message as a length-delimited field: tag, varint length, bytes."""
    lengths = pc.binary_length(messages).to_numpy(zero_copy_only=False).astype(np.int64)
    return _join(pa.scalar(field_tag, pa.binary()), varints(lengths), messages)


def _compare_keys(a: bytes, b: bytes) -> int:
    common = min(len(a), len(b))
    if a[:common] != b[:common]:
        return -1 if a[:common] < b[:common] else 1
    return len(b) - len(a)  # one is a prefix of the other: the longer first


def map_key_order(names) -> list[str]:
    """Map keys in the order protobuf's (upb) deterministic serialization writes them.

    Byte order, except that a key comes after every longer key it is a prefix of
    (``price_change_7d`` before ``price``): upb sorts then encodes back to front.
    """
    return sorted(names, key=functools.cmp_to_key(lambda a, b: _compare_keys(a.encode(), b.encode())))


def float_block_entries(names: list[str], columns: list[pa.Array], rows: np.ndarray | None) -> pa.Array:
    """Each row's map entries of several FLOAT features (adjacent in map-key order), concatenated.

    The same bytes as joining :func:`feature_entries` of each, built as one byte matrix: a row
    of every entry (constant prefix + 4 float bytes) is laid out per document, the float bytes
    written in one assignment, and the entries of missing values masked out.
    """
    # One row per feature: its values as float32 (what protobuf stores) and where they are present.
    by_feature = np.empty((len(names), len(columns[0])), "<f4")
    present = np.ones(by_feature.shape, bool)
    for j, column in enumerate(columns):
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        by_feature[j] = column.cast(pa.float32()).to_numpy(zero_copy_only=False)
        if column.null_count == len(column):
            present[j] = False
        elif column.null_count:
            bits = np.frombuffer(column.buffers()[0], np.uint8)
            present[j] = np.unpackbits(bits, count=column.offset + len(column), bitorder="little")[column.offset :]
    if rows is not None:
        by_feature, present = np.ascontiguousarray(by_feature[:, rows]), present[:, rows]
    n = by_feature.shape[1]
    valid = present.T
    prefixes = _float_prefixes(tuple(names))
    width = len(prefixes[0]) + 4
    if all(len(prefix) + 4 == width for prefix in prefixes):  # names of one length: a (docs, features, entry) cube
        cube = np.empty((n, len(names), width), np.uint8)
        cube[:, :, : width - 4] = np.frombuffer(b"".join(prefixes), np.uint8).reshape(len(names), width - 4)
        cube[:, :, width - 4 :] = np.ascontiguousarray(by_feature.T).view(np.uint8).reshape(n, len(names), 4)
        data = cube.reshape(-1) if valid.all() else cube[valid].reshape(-1)
        lengths = np.count_nonzero(valid, axis=1).astype(np.int64) * width
    else:
        values = np.ascontiguousarray(by_feature.T)
        widths = np.asarray([len(prefix) + 4 for prefix in prefixes], np.int64)
        ends = np.cumsum(widths)
        matrix = np.empty((n, int(ends[-1])), np.uint8)
        matrix[:] = np.frombuffer(b"".join(prefix + b"\x00" * 4 for prefix in prefixes), np.uint8)
        value_columns = (ends - 4)[:, None] + np.arange(4)
        matrix[:, value_columns.reshape(-1)] = values.view(np.uint8).reshape(n, 4 * len(names))
        if valid.all():
            data, lengths = matrix.reshape(-1), np.full(n, matrix.shape[1], np.int64)
        else:
            data, lengths = matrix[np.repeat(valid, widths, axis=1)], valid.astype(np.int64) @ widths
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


@functools.lru_cache(maxsize=64)
def _float_prefixes(names: tuple[str, ...]) -> list[bytes]:
    """Each FLOAT feature's map entry up to its 4 value bytes (as in :func:`feature_entries`)."""
    prefixes = []
    for name in names:
        key = name.encode()
        entry = b"\x0a" + varint_bytes(len(key)) + key + b"\x12" + b"\x08\x12\x06\x0a\x04"
        prefixes.append(b"\x0a" + varint_bytes(len(entry) + 4) + entry)
    return prefixes


def encode_examples(
    columns: dict[str, tuple[Dtype, pa.Array]], num_rows: int, rows: np.ndarray | None = None
) -> pa.Array:
    """Serialized tf.Example of every row, holding only its non-missing values (``deterministic=True`` bytes).

    ``rows``: the rows of ``columns`` to encode, in this order (default: all, ``num_rows``).
    FLOAT features next to each other in map-key order are encoded as one block.
    """
    if rows is not None:
        num_rows = len(rows)
    if not columns:
        return pa.array([b""] * num_rows, pa.binary())
    runs: list[list[str]] = []
    for name in map_key_order(columns):
        if runs and columns[name][0] == Dtype.FLOAT and columns[runs[-1][-1]][0] == Dtype.FLOAT:
            runs[-1].append(name)
        else:
            runs.append([name])
    entries = []
    take = pa.array(rows, pa.int64()) if rows is not None else None
    for run in runs:
        if len(run) > 1:
            entries.append(float_block_entries(run, [columns[name][1] for name in run], rows))
        else:
            dtype, column = columns[run[0]]
            entries.append(feature_entries(run[0], dtype, column if take is None else column.take(take)))
    # "replace" by b"" (not "skip": it drops rows in pyarrow 10); with an empty separator it is the same.
    body = pc.binary_join_element_wise(*entries, _EMPTY, null_handling="replace", null_replacement="")
    examples = wrap(b"\x0a", body)  # Example.features
    empty = pc.equal(pc.binary_length(body), 0)
    return pc.if_else(empty, _EMPTY, examples) if pc.any(empty).as_py() else examples


def frame_lists(contexts: pa.Array, docs: pa.Array, list_offsets: np.ndarray) -> pa.Array:
    """Serialized ELWC per list: the docs ``docs[list_offsets[i]:list_offsets[i+1]]`` then context i."""
    wrapped_docs = wrap(b"\x0a", docs)
    lists = pa.ListArray.from_arrays(pa.array(list_offsets, pa.int32()), wrapped_docs)
    examples_part = pc.binary_join(lists, _EMPTY)
    return _join(examples_part, wrap(b"\x12", contexts))
