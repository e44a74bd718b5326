import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from modules.features import Dtype, Role, SchemaError, Transform, feature_set_from_schema


def _schema(text: str) -> schema_pb2.Schema:
    base = """
      feature { name: "qid" type: BYTES annotation { tag: "role:query_id" } }
      feature { name: "rel" type: INT annotation { tag: "role:label" } }
    """
    return text_format.Parse(base + text, schema_pb2.Schema())


def test_bundled_schema_roles_and_defaults(feature_set):
    assert feature_set.query_id.name == "query_id"
    assert feature_set.label.name == "label"
    assert [f.name for f in feature_set.context] == ["query_length", "user_tenure_days"]
    assert "price" in [f.name for f in feature_set.document]
    assert feature_set["price"].default == 50.0
    assert feature_set["rating"].transform == Transform.PASSTHROUGH
    assert feature_set["label"].max_value == 4.0
    # The query id is a context proto feature; doc id and position live on documents.
    assert {f.name for f in feature_set.context_protos} == {"query_id", "query_length", "user_tenure_days"}
    assert feature_set["doc_id"].role == Role.DOC_ID and not feature_set["doc_id"].in_context


def test_document_feature_parses_with_domain():
    fs = feature_set_from_schema(
        _schema(
            'feature { name: "x" type: FLOAT float_domain { min: 0 max: 2 } '
            'annotation { tag: "role:document" tag: "default:1.5" } }'
        )
    )
    x = fs["x"]
    assert (x.dtype, x.default, x.transform) == (Dtype.FLOAT, 1.5, Transform.LOG1P)
    assert x.in_domain(2.0) and not x.in_domain(2.5) and not x.in_domain(-0.1)


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        (
            'feature { name: "x" type: FLOAT annotation { tag: "role:document" } }',
            "'x': model features need a 'default:'",
        ),
        ('feature { name: "x" type: FLOAT annotation { tag: "default:1" } }', "'x': missing 'role:'"),
        ('feature { name: "x" type: FLOAT annotation { tag: "role:doc" tag: "default:1" } }', "unknown role 'doc'"),
        ('feature { name: "x" type: FLOAT annotation { tag: "role:document" tag: "default:abc" } }', "not a number"),
        (
            'feature { name: "x" type: BYTES annotation { tag: "role:document" tag: "default:a" '
            'tag: "transform:log1p" } }',
            "string features take 'transform:vocabulary'",
        ),
        (
            'feature { name: "x" type: FLOAT annotation { tag: "role:document" tag: "default:1" '
            'tag: "transform:vocabulary" } }',
            "numeric features cannot take",
        ),
        (
            'feature { name: "x" type: FLOAT annotation { tag: "role:document" tag: "default:1" '
            'tag: "transform:bucketize" tag: "buckets:1" } }',
            "buckets must be >= 2",
        ),
        (
            'feature { name: "x" type: FLOAT annotation { tag: "role:document" tag: "default:1" '
            'tag: "transform:sqrt" } }',
            "unknown transform 'sqrt'",
        ),
        ('feature { name: "rel" type: FLOAT annotation { tag: "role:document" tag: "default:1" } }', "duplicate"),
        ('feature { name: "x" type: FLOAT annotation { tag: "role" } }', "key:value"),
    ],
)
def test_schema_errors_name_the_feature(feature, message):
    with pytest.raises(SchemaError, match=message):
        feature_set_from_schema(_schema(feature))


def test_string_features_default_to_a_vocabulary():
    fs = feature_set_from_schema(
        _schema(
            'feature { name: "brand" type: BYTES annotation { tag: "role:document" tag: "default:none" '
            'tag: "oov:3" } }'
            'feature { name: "x" type: FLOAT annotation { tag: "role:document" tag: "default:1" '
            'tag: "transform:bucketize" tag: "buckets:4" } }'
        )
    )
    assert (fs["brand"].transform, fs["brand"].default, fs["brand"].oov_buckets) == (Transform.VOCABULARY, "none", 3)
    assert (fs["x"].transform, fs["x"].buckets) == (Transform.BUCKETIZE, 4)


def test_schema_needs_query_id_label_and_a_document_feature():
    with pytest.raises(SchemaError, match="no document feature"):
        feature_set_from_schema(_schema(""))
    without_label = text_format.Parse(
        'feature { name: "qid" type: BYTES annotation { tag: "role:query_id" } }', schema_pb2.Schema()
    )
    with pytest.raises(SchemaError, match="exactly one 'label'"):
        feature_set_from_schema(without_label)
