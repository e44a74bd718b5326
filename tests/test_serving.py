"""Serving signatures: train/serve skew, ELWC vs tensor signature, awkward requests."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_serving.apis import input_pb2

from components.elwc_example_gen.elwc import elwc_from_values
from modules.features import DOCUMENT_BLOCK, Role, Transform
from modules.serving import loading
from modules.training.inputs import ModelInputs, raw_to_model_inputs
from tests.helpers import read_records

PROBE = os.path.join(os.path.dirname(__file__), "serving_probe.py")


def _eval_records(report) -> list[bytes]:
    return read_records(os.path.join(report.artifact("Examples").uri, "Split-eval", "*.gz"))


@pytest.fixture(scope="module")
def served(pipeline_run, feature_set, tmp_path_factory):
    """Eval records and what a fresh process (no project imports) gets from the served model."""
    _, report = pipeline_run
    records = _eval_records(report)[:40]
    tmp = tmp_path_factory.mktemp("serving")
    with tf.io.TFRecordWriter(str(tmp / "records.tfrecord")) as writer:
        for record in records:
            writer.write(record)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    context = json.dumps([f.name for f in feature_set.context])
    subprocess.run(
        [
            sys.executable,
            PROBE,
            report.registration["path"],
            str(tmp / "records.tfrecord"),
            str(tmp / "o.npz"),
            context,
            json.dumps(loading.op_packages(report.registration["path"])),
        ],
        check=True,
        cwd=tmp,
        env=env,
        timeout=300,
    )
    return records, dict(np.load(tmp / "o.npz", allow_pickle=True))


def test_serving_process_needs_no_project_and_no_custom_op_libraries(served):
    _, out = served
    assert out["leaked_modules"].tolist() == []


def test_training_and_serving_transform_features_identically(pipeline_run, feature_set, served):
    """The Trainer's input pipeline and the served graph agree to 1e-6, missing values included."""
    _, report = pipeline_run
    records, out = served
    tft_output = tft.TFTransformOutput(report.artifact("TransformGraph").uri)
    model_inputs = ModelInputs.from_transform_output(feature_set, tft_output)
    training, _ = raw_to_model_inputs(
        tf.constant(records), feature_set, model_inputs, tft_output.transform_features_layer(), list_size=None
    )
    for name, value in training.items():
        np.testing.assert_allclose(out[f"transformed/{name}"], value.numpy(), atol=1e-6, err_msg=name)

    # Independently of both graphs: default filling + signed log1p computed by hand.
    elwcs = [input_pb2.ExampleListWithContext.FromString(r) for r in records]
    missing = 0
    block = out[f"transformed/{DOCUMENT_BLOCK}"]
    for column, feature in enumerate(feature_set.numeric(Role.DOCUMENT)):
        if feature.transform != Transform.LOG1P:
            continue
        for i, elwc in enumerate(elwcs):
            for j, example in enumerate(elwc.examples):
                held = example.features.feature.get(feature.name)
                values = list(held.float_list.value or held.int64_list.value) if held else []
                missing += not values
                raw = values[0] if values else feature.default
                expected = math.copysign(math.log1p(abs(raw)), raw)
                assert block[i, j, column] == pytest.approx(expected, abs=1e-5)
    assert missing > 0  # the check covered missing values


def test_elwc_and_tensor_signatures_return_identical_scores(served):
    records, out = served
    for i, record in enumerate(records):
        n = len(input_pb2.ExampleListWithContext.FromString(record).examples)
        assert out["mask"][i].sum() == n
        # One list per call: the same computation, the same scores.
        np.testing.assert_allclose(out[f"tensor_scores/{i}"], out[f"single_scores/{i}"], rtol=0, atol=1e-6)
        # In a padded batch the matmul kernels differ: equal up to float32 rounding, which
        # scales with the largest score of the list (scores near 0 carry that absolute error).
        scale = float(np.abs(out["scores"][i, :n]).max())
        np.testing.assert_allclose(out[f"tensor_scores/{i}"], out["scores"][i, :n], rtol=1e-5, atol=1e-5 * scale)


@pytest.fixture(scope="module")
def model(pipeline_run):
    _, report = pipeline_run
    return loading.load(report.registration["path"])


def _elwc(documents: list[dict], context: dict | None = None) -> bytes:
    return elwc_from_values(context or {}, documents).SerializeToString()


def _typed_default(feature):
    return int(feature.default) if feature.dtype.value == "int" else float(feature.default)


def test_missing_features_get_the_schema_defaults(model, feature_set):
    serve = model.signatures["serving_default"]
    documents = {f.name: _typed_default(f) for f in feature_set.document}
    context = {f.name: _typed_default(f) for f in feature_set.context}
    explicit = serve(examples=tf.constant([_elwc([documents, documents], context)]))["scores"].numpy()
    absent = serve(examples=tf.constant([_elwc([{}, {}])]))["scores"].numpy()
    np.testing.assert_allclose(absent, explicit, atol=1e-6)
    # The tensor signature: NaN and empty tensors are missing values too.
    tensors = model.signatures["predict_tensors"]
    names = list(tensors.structured_input_signature[1])
    nan = tensors(**{n: tf.fill([2, 1], float("nan")) for n in names})["scores"].numpy()
    empty = tensors(**{n: tf.zeros([0, 1]) for n in names if n != "price"}, price=tf.fill([2, 1], float("nan")))
    np.testing.assert_allclose(nan, explicit[0], atol=1e-6)
    np.testing.assert_allclose(empty["scores"].numpy(), explicit[0], atol=1e-6)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_are_missing_values_in_every_signature(model, feature_set, bad):
    """Issue 13: a NaN in serialized ELWC scored NaN; now NaN and +-inf get the default everywhere."""
    serve = model.signatures["serving_default"]
    defaults = {f.name: _typed_default(f) for f in feature_set.document}
    context = {f.name: _typed_default(f) for f in feature_set.context}
    explicit = serve(examples=tf.constant([_elwc([defaults, defaults], context)]))["scores"].numpy()
    floats = [f.name for f in feature_set.document if f.dtype.value == "float"]
    assert floats  # ELWC int64 features cannot carry NaN or inf
    broken = {**defaults, **{name: bad for name in floats}}
    scores = serve(examples=tf.constant([_elwc([broken, broken], context)]))["scores"].numpy()
    np.testing.assert_allclose(scores, explicit, atol=1e-6)
    transformed = model.signatures["transform_features"](examples=tf.constant([_elwc([broken], context)]))
    assert all(np.isfinite(v.numpy()).all() for k, v in transformed.items() if v.dtype == tf.float32)
    tensors = model.signatures["predict_tensors"]
    names = list(tensors.structured_input_signature[1])
    out = tensors(**{n: tf.fill([2, 1], bad) for n in names})["scores"].numpy()
    np.testing.assert_allclose(out, explicit[0], atol=1e-6)


def test_an_empty_batch_returns_an_empty_result(model):
    """Issue 13: serving [] raised InvalidArgumentError (DecodeProtoV2 takes no empty batch)."""
    out = model.signatures["serving_default"](examples=tf.constant([], tf.string))
    assert out["scores"].shape == (0, 0) and out["mask"].shape == (0, 0)
    transformed = model.signatures["transform_features"](examples=tf.constant([], tf.string))
    assert all(v.shape[0] == 0 for v in transformed.values())
    tensors = model.signatures["predict_tensors"]
    names = list(tensors.structured_input_signature[1])
    assert tensors(**{name: tf.zeros([0, 1]) for name in names})["scores"].shape == (0,)


def test_empty_list_and_lists_longer_than_training(model, pipeline_run):
    config, _ = pipeline_run
    serve = model.signatures["serving_default"]
    empty = serve(examples=tf.constant([_elwc([])]))
    assert empty["scores"].shape == (1, 0)
    long_list = [{"price": float(i), "text_match": float(i % 7)} for i in range(10 * config.training.list_size)]
    out = serve(examples=tf.constant([_elwc(long_list)]))
    assert out["scores"].shape == (1, len(long_list))
    assert np.isfinite(out["scores"].numpy()).all() and out["mask"].numpy().all()
    tensors = model.signatures["predict_tensors"]
    names = list(tensors.structured_input_signature[1])
    no_docs = {name: tf.zeros([0, 1]) for name in names}
    assert tensors(**no_docs)["scores"].shape == (0,)


def test_wrong_dtype_is_a_clear_error_naming_the_feature(model):
    serve = model.signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="price"):
        serve(examples=tf.constant([_elwc([{"price": b"cheap"}])]))
    tensors = model.signatures["predict_tensors"]
    names = list(tensors.structured_input_signature[1])
    args = {name: tf.constant([[1.0], [2.0]]) for name in names}
    args["price"] = tf.constant([[1.0], [2.0], [3.0]])
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"\[price_change_7d\] \[has\] \[2\] \[rows but the list has\] \[3\] \[documents",
    ):
        tensors(**args)
    args["price"] = tf.constant([["a"], ["b"]])
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError), match="float"):
        tensors(**args)
    # The model still serves after the errors.
    assert serve(examples=tf.constant([_elwc([{"price": 3.0}])]))["scores"].shape == (1, 1)
