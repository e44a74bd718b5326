"""The standard TFX Transform on ELWC (via the ExampleGen's DataView): analyzers over real documents."""

from __future__ import annotations

import csv
import glob
import os

import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_serving.apis import input_pb2
from tfx import v1 as tfx
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import example_gen_pb2

from components.elwc_example_gen import ElwcExampleGen
from modules.features import DEFAULT_SCHEMA_PATH, DOCUMENT_BLOCK, Role, Transform, feature_set_from_schema, load_schema
from modules.serving.signatures import export_serving_model
from modules.training.config import TrainingConfig
from modules.training.inputs import FnInputs
from modules.training.model import build_model
from modules.transform.decoder import decode_elwc
from modules.transform.preprocessing import OVERRIDES_CONFIG_KEY, SCHEMA_CONFIG_KEY, apply_overrides

BRAND = """
feature {
  name: "brand"
  type: BYTES
  annotation { tag: "role:document" tag: "default:unknown" tag: "oov:2" }
}
"""
BRANDS = ["acme", "globex", "initech"]
OVERRIDES = {"price": "zscore", "num_reviews": "zscore", "rating": "bucketize"}


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("transform")
    schema_path = tmp / "schema.pbtxt"
    schema_path.write_text(DEFAULT_SCHEMA_PATH.read_text() + BRAND)
    rng = np.random.default_rng(0)
    (tmp / "data" / "span-1").mkdir(parents=True)
    with open(tmp / "data" / "span-1" / "logs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query_id", "doc_id", "price", "num_reviews", "rating", "brand", "label"])
        for q in range(30):
            for d in range(int(rng.integers(2, 8))):
                price = "" if rng.random() < 0.2 else f"{rng.lognormal(3, 1):.2f}"
                brand = "" if rng.random() < 0.2 else BRANDS[int(rng.integers(0, 3))]
                reviews = "" if rng.random() < 0.3 else int(rng.integers(0, 500))
                row = [f"q{q}", f"d{d}", price, reviews, f"{rng.uniform(1, 5):.1f}", brand, int(rng.integers(0, 5))]
                writer.writerow(row)

    schema_gen = tfx.components.ImportSchemaGen(schema_file=str(schema_path))
    example_gen = ElwcExampleGen(
        input_base=str(tmp / "data"),
        schema=schema_gen.outputs["schema"],
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=1)]
            )
        ),
    )
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn="modules.transform.preprocessing.preprocessing_fn",
        custom_config={SCHEMA_CONFIG_KEY: schema_path.read_text(), OVERRIDES_CONFIG_KEY: OVERRIDES},
        materialize=False,
    )
    pipeline = tfx_pipeline.Pipeline(
        pipeline_name="transform_test",
        pipeline_root=str(tmp / "root"),
        components=[schema_gen, example_gen, transform],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(str(tmp / "md.db")),
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    graph_uri = glob.glob(str(tmp / "root" / "Transform" / "transform_graph" / "*"))[0]
    records = [
        r.numpy()
        for r in tf.data.TFRecordDataset(
            glob.glob(str(tmp / "root" / "ElwcExampleGen" / "examples" / "*" / "Split-train" / "*")),
            compression_type="GZIP",
        )
    ]
    feature_set = apply_overrides(feature_set_from_schema(load_schema(schema_path)), OVERRIDES)
    raw = decode_elwc(tf.constant(records), feature_set)
    outputs = tft.TFTransformOutput(graph_uri).transform_features_layer()(raw)
    return tft.TFTransformOutput(graph_uri), feature_set, raw, outputs, records


def test_block_matches_a_per_feature_reference_zscore_over_all_documents(transformed):
    """Each column of the document block against its own per-feature computation in numpy:
    z-score with the column's own mean and std over all real documents (defaults filled),
    signed log1p or passthrough otherwise; the bucketized column has left the block."""
    _, feature_set, raw, outputs, _ = transformed
    numeric = feature_set.numeric(Role.DOCUMENT)
    values = raw[DOCUMENT_BLOCK].values.numpy()
    kept = [f for f in numeric if f.transform != Transform.BUCKETIZE]
    block = outputs[DOCUMENT_BLOCK].values.numpy()
    assert block.shape == (len(values), len(kept))
    for j, feature in enumerate(kept):
        column = values[:, [f.name for f in numeric].index(feature.name)].astype(np.float64)
        filled = np.where(np.isfinite(column), column, feature.default)
        if feature.transform == Transform.ZSCORE:
            assert np.isnan(column).any(), feature.name  # some values are missing
            expected = (filled - filled.mean()) / filled.std()
        elif feature.transform == Transform.LOG1P:
            expected = np.sign(filled) * np.log1p(np.abs(filled))
        else:
            expected = filled
        np.testing.assert_allclose(block[:, j], expected, rtol=1e-5, atol=1e-5, err_msg=feature.name)
    assert {f.name for f in kept if f.transform == Transform.ZSCORE} == {"price", "num_reviews"}


def test_bucketize_gives_ids_below_the_bucket_count(transformed):
    tft_output, feature_set, raw, outputs, _ = transformed
    ids = outputs["rating"].flat_values.numpy()
    assert ids.dtype == np.int64
    assert ids.min() >= 0 and ids.max() < 10 and len(set(ids.tolist())) > 3
    rating = raw[DOCUMENT_BLOCK].values.numpy()[:, [f.name for f in feature_set.numeric(Role.DOCUMENT)].index("rating")]
    order = np.argsort(rating, kind="stable")
    assert (np.diff(ids[order]) >= 0).all()  # quantile buckets of the rating itself
    assert tft_output.num_buckets_for_transformed_feature("rating") == 10


def test_vocabulary_with_oov_buckets_and_default(transformed):
    tft_output, _, raw, outputs, _ = transformed
    vocabulary = tft_output.vocabulary_by_name("vocab_brand")
    assert {v.decode() for v in vocabulary} == {*BRANDS, "unknown"}  # the default is a real value
    assert tft_output.num_buckets_for_transformed_feature("brand") == len(vocabulary) + 2
    ids = outputs["brand"].flat_values.numpy()
    brands = [v[0].decode() if v else "unknown" for v in raw["brand"].values.to_list()]
    assert [vocabulary[i].decode() for i in ids] == brands
    unseen = tft_output.transform_features_layer()(
        {**raw, "brand": raw["brand"].with_flat_values(tf.fill(tf.shape(raw["brand"].flat_values), "never-seen"))}
    )["brand"].flat_values.numpy()
    had_value = np.array([bool(v) for v in raw["brand"].values.to_list()])
    assert (unseen[had_value] >= len(vocabulary)).all()  # out-of-vocabulary buckets
    assert (unseen[~had_value] == ids[~had_value]).all()  # missing: still the default


def test_overrides_must_name_a_model_feature():
    feature_set = feature_set_from_schema(load_schema(DEFAULT_SCHEMA_PATH))
    with pytest.raises(ValueError, match="transform override for 'nope'"):
        apply_overrides(feature_set, {"nope": "zscore"})
    with pytest.raises(ValueError, match="numeric features cannot take 'transform:vocabulary'"):
        apply_overrides(feature_set, {"price": "vocabulary"})
    assert os.path.exists(DEFAULT_SCHEMA_PATH)


def test_id_features_are_embedded_trained_and_served_from_raw_strings(transformed, tmp_path):
    """Vocabulary and bucket ids go through the model's embeddings; serving takes the raw strings."""
    tft_output, feature_set, _, _, records = transformed
    inputs = FnInputs(feature_set, tft_output, TrainingConfig(batch_size=8, list_size=8, seed=0))
    assert inputs.model_inputs.document_ids == {"rating": 10, "brand": len(BRANDS) + 1 + 2}
    assert inputs.model_inputs.document_block == len(feature_set.numeric(Role.DOCUMENT)) - 1  # rating is an id
    path = str(tmp_path / "records.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for record in records:
            writer.write(record)
    model = build_model(inputs.model_inputs, kt.HyperParameters())
    model.fit(inputs.dataset([path], train=True), steps_per_epoch=3, epochs=1, verbose=0)
    export_serving_model(
        model, tft_output.transform_features_layer(), feature_set, inputs.model_inputs, str(tmp_path / "model")
    )

    served = tf.saved_model.load(str(tmp_path / "model"))
    elwc = input_pb2.ExampleListWithContext.FromString(records[0])
    expected = served.signatures["serving_default"](examples=tf.constant(records[:1]))["scores"].numpy()[0]
    tensors = served.signatures["predict_tensors"]
    args = {}
    for name, spec in tensors.structured_input_signature[1].items():
        rows = [elwc.context] if name in {f.name for f in feature_set.context} else list(elwc.examples)
        values = []
        for example in rows:
            feature = example.features.feature.get(name)
            held = (
                list(feature.bytes_list.value or feature.float_list.value or feature.int64_list.value)
                if feature
                else []
            )
            if spec.dtype == tf.string:
                values.append(held[0] if held else b"")
            else:
                values.append(float(held[0]) if held else float("nan"))
        args[name] = tf.constant(
            np.array(values, dtype=object if spec.dtype == tf.string else np.float32).reshape(-1, 1)
        )
    assert args["brand"].dtype == tf.string
    np.testing.assert_allclose(tensors(**args)["scores"].numpy(), expected, atol=1e-5)
    unseen = dict(args, brand=tf.fill(tf.shape(args["brand"]), "never-seen"))
    assert np.isfinite(tensors(**unseen)["scores"].numpy()).all()
