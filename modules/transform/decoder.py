"""Decodes serialized ExampleListWithContext (ELWC) records with plain TF ops.

Why not struct2tensor or tfr's parsers: a SavedModel must load in stock TF
Serving (no custom ops), Transform needs Arrow-convertible outputs, and missing
values must stay visible (an empty inner list), so defaults are applied exactly
where data is missing. The same decoder runs in Transform (as a DataView), in
the Trainer's input pipeline and inside the served model.

Outputs (B = number of lists), missing values visible:
  ``CONTEXT_BLOCK``   float32 [B, C]: the numeric context features (schema order), NaN where missing
  ``DOCUMENT_BLOCK``  float32 RaggedTensor [B, (docs), D]: the numeric document features, NaN where missing
  other context features   RaggedTensor [B, (values)] (query id, string features)
  other document features  RaggedTensor [B, (docs), (values)] (label, doc id, position, strings)

The numeric features are parsed as fixed-length values straight into one dense
block per role (one ``ParseExample`` op, one concat), whatever their number.
"""

from __future__ import annotations

import tensorflow as tf
from google.protobuf import descriptor_pb2
from tfx_bsl.coders import tf_graph_record_decoder

from modules.features import CONTEXT_BLOCK, DOCUMENT_BLOCK, Dtype, Feature, FeatureSet, Role

TF_DTYPES = {Dtype.INT: tf.int64, Dtype.FLOAT: tf.float32, Dtype.BYTES: tf.string}
# An absent int64 value parses to this sentinel, then becomes NaN in the float block.
_MISSING_INT = tf.int64.min


def _raw_elwc_descriptor() -> bytes:
    """A FileDescriptorSet for ELWC that reads its sub-messages as raw bytes.

    ``tensorflow.serving.ExampleListWithContext`` is
    ``{repeated Example examples = 1; Example context = 2;}``; an embedded
    message and ``bytes`` share the same wire format, so declaring both fields
    as bytes lets ``tf.io.decode_proto`` split a record without knowing
    ``tf.Example``, and ``tf.io.parse_example`` does the rest.
    """
    file_proto = descriptor_pb2.FileDescriptorProto(name="ltr_raw_elwc.proto", package="ltr", syntax="proto3")
    message = file_proto.message_type.add(name="RawElwc")
    label = descriptor_pb2.FieldDescriptorProto
    message.field.add(name="examples", number=1, type=label.TYPE_BYTES, label=label.LABEL_REPEATED)
    message.field.add(name="context", number=2, type=label.TYPE_BYTES, label=label.LABEL_OPTIONAL)
    return descriptor_pb2.FileDescriptorSet(file=[file_proto]).SerializeToString()


_DESCRIPTOR_SOURCE = b"bytes://" + _raw_elwc_descriptor()


def _ragged_spec(features: tuple[Feature, ...]) -> dict[str, tf.io.RaggedFeature]:
    return {f.name: tf.io.RaggedFeature(dtype=TF_DTYPES[f.dtype], row_splits_dtype=tf.int64) for f in features}


def _block_spec(features: tuple[Feature, ...]) -> dict[str, tf.io.FixedLenFeature]:
    """One value per Example; absent -> NaN (floats) or the int sentinel."""
    return {
        f.name: tf.io.FixedLenFeature([1], tf.int64, default_value=[_MISSING_INT])
        if f.dtype == Dtype.INT
        else tf.io.FixedLenFeature([1], tf.float32, default_value=[float("nan")])
        for f in features
    }


def _block(parsed: dict[str, tf.Tensor], features: tuple[Feature, ...]) -> tf.Tensor:
    """Parsed ``[N, 1]`` columns -> float32 ``[N, len(features)]``, NaN where missing."""
    columns = []
    for feature in features:
        column = parsed.pop(feature.name)
        if feature.dtype == Dtype.INT:
            column = tf.where(tf.equal(column, _MISSING_INT), float("nan"), tf.cast(column, tf.float32))
        columns.append(column)
    block = tf.concat(columns, axis=1)
    block.set_shape([None, len(features)])
    return block


def split_elwc(records: tf.Tensor) -> tuple[tf.Tensor, tf.RaggedTensor]:
    """Splits serialized ELWCs into context Examples [B] and documents [B, (docs)]."""
    # DecodeProtoV2 refuses an empty batch: decode one empty record more, then drop it.
    batch = tf.shape(records)[0]
    sizes, (examples, context) = tf.io.decode_proto(
        tf.concat([records, [""]], axis=0),
        message_type="ltr.RawElwc",
        field_names=["examples", "context"],
        output_types=[tf.string, tf.string],
        descriptor_source=_DESCRIPTOR_SOURCE,
    )
    sizes, examples, context = sizes[:batch], examples[:batch], context[:batch]
    documents = tf.RaggedTensor.from_tensor(examples, lengths=sizes[:, 0])
    # An absent context decodes to no value: parse it as an empty Example.
    context = tf.RaggedTensor.from_tensor(context, lengths=sizes[:, 1]).to_tensor(default_value="", shape=[None, 1])[
        :, 0
    ]
    return context, documents


def _parse(serialized: tf.Tensor, features: tuple[Feature, ...], numeric: tuple[Feature, ...], block_key: str):
    """Per-feature ragged values, plus the numeric features as one float block."""
    spec = {**_ragged_spec(tuple(f for f in features if f not in numeric)), **_block_spec(numeric)}
    parsed = dict(tf.io.parse_example(serialized, spec))
    if numeric:
        parsed[block_key] = _block(parsed, numeric)
    return parsed


def decode_elwc(records: tf.Tensor, feature_set: FeatureSet) -> dict[str, tf.Tensor | tf.RaggedTensor]:
    """Parses serialized ELWCs into the numeric blocks and ragged tensors (see module docstring)."""
    records = tf.reshape(records, [-1])
    context, documents = split_elwc(records)
    parsed = _parse(context, feature_set.context_protos, feature_set.numeric(Role.CONTEXT), CONTEXT_BLOCK)
    per_document = _parse(
        documents.flat_values, feature_set.document_protos, feature_set.numeric(Role.DOCUMENT), DOCUMENT_BLOCK
    )
    row_splits = tf.cast(documents.row_splits, tf.int64)
    for name, values in per_document.items():
        parsed[name] = tf.RaggedTensor.from_row_splits(values, row_splits, validate=False)
    return parsed


class ElwcDecoder(tf_graph_record_decoder.TFGraphRecordDecoder):
    """TFX DataView decoder for ELWC records (saved as a SavedModel by TFX)."""

    def __init__(self, feature_set: FeatureSet):
        self._feature_set = feature_set

    def decode_record(self, records: tf.Tensor) -> dict[str, tf.RaggedTensor]:
        return decode_elwc(records, self._feature_set)
