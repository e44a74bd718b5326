"""Ranking features as declared in the schema: names, roles, types, defaults.

The schema (``schemas/schema.pbtxt``) is the single source of truth; every other
module (ExampleGen, decoder, preprocessing, model, serving) asks this module
instead of hard-coding feature names. Roles, defaults and transforms are stored
as ``annotation.tag`` strings of the form ``key:value``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from pathlib import Path

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

DEFAULT_SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "schema.pbtxt"

# Name of the boolean list mask the model consumes (TF-Ranking's convention).
MASK_KEY = "example_list_mask"
# The padded display positions ``[B, L]`` a position-bias tower takes in training (never served).
POSITION_KEY = "example_list_position"
# The numeric model features of a role travel as one dense block, columns in
# schema order (see ``FeatureSet.numeric``): ``[lists, features]`` for context,
# ``[lists, (docs), features]`` for documents. One decode, one transform, one
# model input for hundreds of features instead of an op chain each.
CONTEXT_BLOCK = "context_numeric"
DOCUMENT_BLOCK = "document_numeric"
RESERVED_NAMES = frozenset({MASK_KEY, POSITION_KEY, CONTEXT_BLOCK, DOCUMENT_BLOCK})


class Role(str, enum.Enum):
    QUERY_ID = "query_id"
    DOC_ID = "doc_id"
    POSITION = "position"
    LABEL = "label"
    CONTEXT = "context"
    DOCUMENT = "document"


class Dtype(str, enum.Enum):
    INT = "int"
    FLOAT = "float"
    BYTES = "bytes"


class Transform(str, enum.Enum):
    LOG1P = "log1p"  # sign(x) * log1p(|x|), the default for numeric features
    PASSTHROUGH = "passthrough"
    ZSCORE = "zscore"  # (x - mean) / std over all documents (or lists) of the data
    BUCKETIZE = "bucketize"  # quantile bucket id (``buckets:N``, default 10); embedded by the model
    VOCABULARY = "vocabulary"  # string -> id (``oov:N`` out-of-vocabulary buckets, default 1)


NUMERIC_TRANSFORMS = frozenset({Transform.LOG1P, Transform.PASSTHROUGH, Transform.ZSCORE, Transform.BUCKETIZE})
DEFAULT_BUCKETS = 10
DEFAULT_OOV_BUCKETS = 1


# Roles stored in the ELWC context; all others live on each document.
CONTEXT_ROLES = frozenset({Role.QUERY_ID, Role.CONTEXT})

_TYPES = {
    schema_pb2.INT: Dtype.INT,
    schema_pb2.FLOAT: Dtype.FLOAT,
    schema_pb2.BYTES: Dtype.BYTES,
}


class SchemaError(ValueError):
    """The schema violates the conventions above; the message names the feature."""


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    role: Role
    dtype: Dtype
    default: float | str | None = None
    transform: Transform = Transform.LOG1P
    min_value: float | None = None
    max_value: float | None = None
    buckets: int = DEFAULT_BUCKETS
    oov_buckets: int = DEFAULT_OOV_BUCKETS

    @property
    def in_context(self) -> bool:
        return self.role in CONTEXT_ROLES

    @property
    def is_model_input(self) -> bool:
        return self.role in (Role.CONTEXT, Role.DOCUMENT)

    @property
    def is_numeric(self) -> bool:
        return self.dtype != Dtype.BYTES

    def in_domain(self, value: float) -> bool:
        if self.min_value is not None and value < self.min_value:
            return False
        return self.max_value is None or value <= self.max_value


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """All features of a ranking schema, grouped by role."""

    features: tuple[Feature, ...]

    def by_role(self, role: Role) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.role == role)

    def single(self, role: Role) -> Feature | None:
        found = self.by_role(role)
        return found[0] if found else None

    @property
    def query_id(self) -> Feature:
        return self.by_role(Role.QUERY_ID)[0]

    @property
    def label(self) -> Feature:
        return self.by_role(Role.LABEL)[0]

    @property
    def context(self) -> tuple[Feature, ...]:
        return self.by_role(Role.CONTEXT)

    @property
    def document(self) -> tuple[Feature, ...]:
        return self.by_role(Role.DOCUMENT)

    def numeric(self, role: Role) -> tuple[Feature, ...]:
        """The columns, in schema order, of the role's numeric block (``CONTEXT_BLOCK`` / ``DOCUMENT_BLOCK``)."""
        return tuple(f for f in self.by_role(role) if f.is_numeric)

    def strings(self, role: Role) -> tuple[Feature, ...]:
        """The role's string features: decoded and transformed one by one (vocabulary)."""
        return tuple(f for f in self.by_role(role) if not f.is_numeric)

    @property
    def context_protos(self) -> tuple[Feature, ...]:
        """Features written into the ELWC context."""
        return tuple(f for f in self.features if f.in_context)

    @property
    def document_protos(self) -> tuple[Feature, ...]:
        """Features written into each ELWC document."""
        return tuple(f for f in self.features if not f.in_context)

    def __getitem__(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)


def load_schema(path: str | Path = DEFAULT_SCHEMA_PATH) -> schema_pb2.Schema:
    """Reads a text-format schema (local path or any tf.io.gfile URI)."""
    import tensorflow as tf  # Deferred: only needed for non-local URIs.

    with tf.io.gfile.GFile(str(path)) as handle:
        return text_format.Parse(handle.read(), schema_pb2.Schema())


def feature_set_from_schema(schema: schema_pb2.Schema) -> FeatureSet:
    features = tuple(_feature_from_proto(proto) for proto in schema.feature)
    _check_feature_set(features)
    return FeatureSet(features)


def load_feature_set(path: str | Path = DEFAULT_SCHEMA_PATH) -> FeatureSet:
    return feature_set_from_schema(load_schema(path))


def _tags(proto: schema_pb2.Feature) -> dict[str, str]:
    tags: dict[str, str] = {}
    for tag in proto.annotation.tag:
        key, sep, value = tag.partition(":")
        if not sep:
            raise SchemaError(f"feature '{proto.name}': tag '{tag}' is not of the form key:value")
        if key in tags:
            raise SchemaError(f"feature '{proto.name}': tag '{key}' given twice")
        tags[key] = value.strip()
    return tags


def _feature_from_proto(proto: schema_pb2.Feature) -> Feature:
    name = proto.name
    tags = _tags(proto)
    if "role" not in tags:
        raise SchemaError(f"feature '{name}': missing 'role:' tag")
    try:
        role = Role(tags["role"])
    except ValueError:
        raise SchemaError(
            f"feature '{name}': unknown role '{tags['role']}' (expected one of {[r.value for r in Role]})"
        ) from None
    if proto.type not in _TYPES:
        raise SchemaError(f"feature '{name}': type must be INT, FLOAT or BYTES")
    dtype = _TYPES[proto.type]

    default: float | str | None = None
    if "default" in tags:
        default = tags["default"] if dtype == Dtype.BYTES else _number(name, "default", tags["default"])
    default_transform = Transform.VOCABULARY if dtype == Dtype.BYTES else Transform.LOG1P
    try:
        transform = Transform(tags.get("transform", default_transform.value))
    except ValueError:
        raise SchemaError(f"feature '{name}': unknown transform '{tags['transform']}'") from None
    buckets = int(_number(name, "buckets", tags.get("buckets", str(DEFAULT_BUCKETS))))
    oov_buckets = int(_number(name, "oov", tags.get("oov", str(DEFAULT_OOV_BUCKETS))))
    if buckets < 2 or oov_buckets < 1:
        raise SchemaError(f"feature '{name}': buckets must be >= 2 and oov >= 1")

    min_value = max_value = None
    if proto.HasField("int_domain"):
        if proto.int_domain.HasField("min"):
            min_value = float(proto.int_domain.min)
        if proto.int_domain.HasField("max"):
            max_value = float(proto.int_domain.max)
    elif proto.HasField("float_domain"):
        if proto.float_domain.HasField("min"):
            min_value = float(proto.float_domain.min)
        if proto.float_domain.HasField("max"):
            max_value = float(proto.float_domain.max)

    if role in (Role.CONTEXT, Role.DOCUMENT):
        check_transform(name, dtype, transform)
        if default is None:
            raise SchemaError(f"feature '{name}': model features need a 'default:' tag")
    return Feature(name, role, dtype, default, transform, min_value, max_value, buckets, oov_buckets)


def check_transform(name: str, dtype: Dtype, transform: Transform) -> None:
    """String features need a vocabulary; numeric features any numeric transform."""
    if dtype == Dtype.BYTES and transform != Transform.VOCABULARY:
        raise SchemaError(f"feature '{name}': string features take 'transform:vocabulary', not '{transform.value}'")
    if dtype != Dtype.BYTES and transform not in NUMERIC_TRANSFORMS:
        raise SchemaError(f"feature '{name}': numeric features cannot take 'transform:{transform.value}'")


def _number(name: str, key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SchemaError(f"feature '{name}': {key} '{text}' is not a number") from None
    if not math.isfinite(value):
        raise SchemaError(f"feature '{name}': {key} must be finite")
    return value


def _check_feature_set(features: tuple[Feature, ...]) -> None:
    names = [f.name for f in features]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SchemaError(f"duplicate feature names: {duplicates}")
    reserved = sorted(set(names) & RESERVED_NAMES)
    if reserved:
        raise SchemaError(f"feature names {reserved} are reserved for the model's inputs; rename them")
    for role, dtypes in ((Role.QUERY_ID, {Dtype.BYTES}), (Role.LABEL, {Dtype.INT, Dtype.FLOAT})):
        found = [f for f in features if f.role == role]
        if len(found) != 1:
            raise SchemaError(f"schema needs exactly one '{role.value}' feature, found {len(found)}")
        if found[0].dtype not in dtypes:
            raise SchemaError(f"feature '{found[0].name}': role {role.value} has the wrong type")
    for role in (Role.DOC_ID, Role.POSITION):
        if sum(f.role == role for f in features) > 1:
            raise SchemaError(f"schema has more than one '{role.value}' feature")
    if not any(f.role == Role.DOCUMENT for f in features):
        raise SchemaError("schema declares no document feature")
