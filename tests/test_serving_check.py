"""Serving check: a fresh TensorFlow-only process loads the candidate and answers warmup requests.

Stand-in models (built here with plain TF ops, both signatures of the real model's
shape) prove each way a model can fail to serve; the real trained model passing
inside the pipeline is asserted with the end-to-end run (last test).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import descriptor_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from components.elwc_example_gen.elwc import elwc_from_values
from components.registry_pusher import executor as pusher_executor
from components.registry_pusher.registry import LocalRegistry
from components.serving_check import executor as check_executor
from components.serving_check import requests as requests_lib
from pipeline.config import apply_overrides, load_config
from pipeline.kubeflow import compile_pipeline
from tests.helpers import schema_artifact

SIZES = [10, 100, 1000]


def _elwc_sizes(examples: tf.Tensor) -> tf.Tensor:
    """Documents per serialized ELWC, with stock ops only (field 1 = repeated examples)."""
    message = descriptor_pb2.DescriptorProto(name="Lists")
    message.field.add(
        name="examples",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    )
    files = descriptor_pb2.FileDescriptorSet(
        file=[descriptor_pb2.FileDescriptorProto(name="lists.proto", package="t", message_type=[message])]
    )
    sizes, _ = tf.io.decode_proto(
        examples, "t.Lists", ["examples"], [tf.string], descriptor_source=b"bytes://" + files.SerializeToString()
    )
    return sizes[:, 0]


def save_stand_in_model(path: str, feature_set, score: float = 0.5, drop_last_score: bool = False) -> str:
    """A SavedModel with the exported model's signatures: ``serving_default`` on serialized ELWC
    (scores/mask ``[B, L]``) and ``predict_tensors`` (scores ``[N]``); every score is ``score``."""
    features = feature_set.context + feature_set.document
    specs = [tf.TensorSpec([None, 1], tf.float32, name=f.name) for f in features]
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
        sizes = _elwc_sizes(examples)
        mask = tf.sequence_mask(sizes, tf.reduce_max(sizes))
        scores = tf.where(mask, tf.fill(tf.shape(mask), score), 0.0)
        return {"scores": scores, "mask": mask}

    @tf.function(input_signature=specs)
    def tensors(*columns):
        n = tf.shape(columns[-1])[0] - (1 if drop_last_score else 0)
        return {"scores": tf.fill([n], score) + 0.0 * tf.reduce_sum(columns[0])}

    module.serve, module.tensors = serve, tensors
    tf.saved_model.save(
        module, path, signatures={"serving_default": serve.get_concrete_function(), "predict_tensors": tensors}
    )
    return path


def _needs_custom_op(path: str) -> None:
    """Rewrites the graph so it references an op plain TensorFlow lacks (as struct2tensor's decoder would)."""
    pb = os.path.join(path, "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    with open(pb, "rb") as handle:
        proto.ParseFromString(handle.read())
    renamed = 0
    for function in proto.meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.op == "DecodeProtoV2":
                node.op = "DecodeProtoSparseV4"
                renamed += 1
    assert renamed
    with open(pb, "wb") as handle:
        handle.write(proto.SerializeToString())


@pytest.fixture(scope="module")
def eval_examples(tmp_path_factory, feature_set):
    """An Examples artifact whose eval split holds 30 ELWC lists of 4-20 documents with the schema's features."""
    rng = np.random.default_rng(0)
    tmp = tmp_path_factory.mktemp("check-examples")
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp / "examples")
    examples.split_names = '["train", "eval"]'
    os.makedirs(os.path.join(examples.uri, "Split-eval"))
    with tf.io.TFRecordWriter(os.path.join(examples.uri, "Split-eval", "data.gz"), "GZIP") as writer:
        for q in range(30):
            context = {"query_id": f"q{q}".encode(), "query_length": int(rng.integers(1, 6))}
            documents = []
            for d in range(int(rng.integers(4, 21))):
                doc = {"doc_id": f"d{d}".encode(), "label": int(rng.integers(0, 5))}
                doc.update({f.name: float(rng.normal()) for f in feature_set.document if rng.random() > 0.1})
                documents.append(doc)
            writer.write(elwc_from_values(context, documents).SerializeToString())
    return examples, schema_artifact(tmp)


def _model(tmp_path, feature_set, **kwargs) -> standard_artifacts.Model:
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    model.id = 41
    save_stand_in_model(path_utils.serving_model_path(model.uri), feature_set, **kwargs)
    return model


def run_check(tmp_path, model, eval_examples, blessing_in=None) -> standard_artifacts.InfraBlessing:
    examples, schema = eval_examples
    blessing = standard_artifacts.InfraBlessing()
    blessing.uri = str(tmp_path / "blessing")
    os.makedirs(blessing.uri)
    inputs = {"model": [model], "examples": [examples], "schema": [schema]}
    if blessing_in is not None:
        inputs["model_blessing"] = [blessing_in]
    check_executor.Executor().Do(
        inputs,
        {"blessing": [blessing]},
        {
            "split": "eval",
            "batch_lists": 8,
            "latency_list_sizes": json.dumps(SIZES),
            "latency_repeats": 5,
            "timeout_s": 300,
            "model_name": "ranker",
        },
    )
    return blessing


def _push(tmp_path, model, infra_blessing) -> tuple[standard_artifacts.PushedModel, LocalRegistry]:
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "model_blessing")
    blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    os.makedirs(pushed.uri)
    registry_root = str(tmp_path / "registry")
    pusher_executor.Executor().Do(
        {"model": [model], "model_blessing": [blessing], "infra_blessing": [infra_blessing]},
        {"pushed_model": [pushed]},
        {"registry_root": registry_root, "model_name": "ranker", "backend": "local"},
    )
    return pushed, LocalRegistry(registry_root)


def _warmup_logs(saved_model_dir: str) -> list[prediction_log_pb2.PredictionLog]:
    path = path_utils.warmup_file_path(saved_model_dir)
    return [prediction_log_pb2.PredictionLog.FromString(r) for r in tf.data.TFRecordDataset(path).as_numpy_iterator()]


def test_a_servable_model_passes_records_latency_and_is_pushed_with_its_warmup_requests(
    tmp_path, feature_set, eval_examples
):
    model = _model(tmp_path, feature_set)
    blessing = run_check(tmp_path, model, eval_examples)
    props = blessing.mlmd_artifact.custom_properties
    assert props["blessed"].int_value == 1, props["blessing_message"].string_value
    assert props["has_model"].int_value == 1
    for signature in ("serving_default", "predict_tensors"):
        for size in SIZES:
            p50 = props[check_executor.latency_property(signature, size, "p50")].double_value
            p99 = props[check_executor.latency_property(signature, size, "p99")].double_value
            assert 0 < p50 <= p99
    report = json.loads(open(os.path.join(blessing.uri, check_executor.RESULT_FILE)).read())
    assert report["leaked_modules"] == []
    assert report["op_packages"] == []  # a neural model loads with TensorFlow alone (no TF-DF import)

    # The warmup file is TF Serving's format: PredictionLog records with PredictRequests
    # for both signatures, built from the real eval lists.
    logs = _warmup_logs(path_utils.stamped_model_path(blessing.uri))
    signatures = [log.predict_log.request.model_spec.signature_name for log in logs]
    assert set(signatures) == {"serving_default", "predict_tensors"}
    assert {log.predict_log.request.model_spec.name for log in logs} == {"ranker"}
    batch = tf.make_ndarray(logs[0].predict_log.request.inputs["examples"])
    examples_uri = eval_examples[0].uri
    eval_records = [r for r in tf.data.TFRecordDataset(os.path.join(examples_uri, "Split-eval", "data.gz"), "GZIP")]
    assert batch.tolist() == [r.numpy() for r in eval_records[:8]]
    tensors = logs[1].predict_log.request.inputs
    assert tensors["query_length"].tensor_shape.dim[0].size == 1  # context: [1, 1]
    first_list = requests_lib.parse(eval_records[0].numpy())
    assert [d.size for d in tensors["price"].tensor_shape.dim] == [len(first_list.examples), 1]

    # The pusher registers the checked copy, warmup file included; the Trainer's model is untouched.
    pushed, registry = _push(tmp_path, model, blessing)
    assert pushed.get_int_custom_property("pushed") == 1
    registered = registry.get("ranker", 1)
    assert len(_warmup_logs(registered.path)) == len(logs)
    assert not os.path.exists(path_utils.warmup_file_path(path_utils.serving_model_path(model.uri)))


@pytest.mark.parametrize(
    ("kwargs", "custom_op", "reason"),
    [
        ({"score": float("nan")}, False, "values are not finite (NaN or inf)"),
        ({"drop_last_score": True}, False, "'scores' has shape [9], expected [10]"),
        ({}, True, "does not load in a plain TensorFlow process: Op type not registered 'DecodeProtoSparseV4'"),
    ],
    ids=["nan-scores", "wrong-shape", "custom-op"],
)
def test_a_model_that_cannot_be_served_is_blocked_with_the_reason_and_not_registered(
    tmp_path, feature_set, eval_examples, kwargs, custom_op, reason
):
    model = _model(tmp_path, feature_set, **kwargs)
    if custom_op:
        _needs_custom_op(path_utils.serving_model_path(model.uri))
    blessing = run_check(tmp_path, model, eval_examples)
    assert blessing.get_int_custom_property("blessed") == 0
    message = blessing.get_string_custom_property("blessing_message")
    assert reason in message
    assert os.path.exists(os.path.join(blessing.uri, "INFRA_NOT_BLESSED"))
    assert not os.path.exists(path_utils.stamped_model_path(blessing.uri))

    pushed, registry = _push(tmp_path, model, blessing)
    assert pushed.get_int_custom_property("pushed") == 0
    assert pushed.get_string_custom_property("pushed_reason") == f"not blessed: serving check failed: {message}"
    assert registry.versions("ranker") == []


def test_a_model_the_evaluator_refused_is_not_checked(tmp_path, feature_set, eval_examples):
    refused = standard_artifacts.ModelBlessing()
    refused.set_int_custom_property("blessed", 0)
    refused.set_string_custom_property("blessing_message", "ndcg_10 0.4 is below the threshold 0.6")
    blessing = run_check(tmp_path, _model(tmp_path, feature_set), eval_examples, blessing_in=refused)
    assert blessing.get_int_custom_property("blessed") == 0
    assert "the evaluator did not bless the model (ndcg_10 0.4" in blessing.get_string_custom_property(
        "blessing_message"
    )


def test_the_compiled_pipeline_runs_the_serving_check_between_evaluator_and_pusher(tmp_path):
    overrides = {"cloud.image": "ltr:test", "pipeline_root": "gs://b/p", "data_root": "gs://b/d"}
    config = apply_overrides(load_config(), overrides).resolved(tmp_path)
    with open(compile_pipeline(config, target="kubeflow", output_dir=str(tmp_path))) as handle:
        spec = json.load(handle)
    tasks = spec["root"]["dag"]["tasks"]
    assert {"RankingEvaluator", "Trainer", "ElwcExampleGen"} <= set(tasks["ServingCheck"]["dependentTasks"])
    assert "ServingCheck" in tasks["RegistryPusher"]["dependentTasks"]
    pusher_inputs = tasks["RegistryPusher"]["inputs"]["artifacts"]
    assert pusher_inputs["infra_blessing"]["taskOutputArtifact"]["producerTask"] == "ServingCheck"
    label = spec["components"][tasks["ServingCheck"]["componentRef"]["name"]]["executorLabel"]
    executor = spec["deploymentSpec"]["executors"][label]
    assert "components.serving_check.executor.Executor" in json.dumps(executor["container"]["args"])


def test_in_the_pipeline_the_trained_model_passes_and_its_registered_version_is_warm(pipeline_run):
    _, report = pipeline_run
    assert report.executions["ServingCheck"] == "COMPLETE"
    check = report.artifact("InfraBlessing")
    props = check.custom_properties
    assert props["blessed"].int_value == 1, props["blessing_message"].string_value
    for signature in ("serving_default", "predict_tensors"):
        for size in SIZES:
            assert props[check_executor.latency_property(signature, size, "p99")].double_value > 0
    assert [a.id for a in report.inputs["RegistryPusher"]["InfraBlessing"]] == [check.id]
    logs = _warmup_logs(report.registration["path"])
    assert {log.predict_log.request.model_spec.signature_name for log in logs} == {"serving_default", "predict_tensors"}


def test_requests_read_only_the_lists_they_need(tmp_path):
    # Lists of 5 documents: 8 lists for the batch request, then enough for a 100-document list.
    path = str(tmp_path / "eval.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for q in range(500):
            docs = [{"label": 1, "price": float(d)} for d in range(5)]
            writer.write(elwc_from_values({"query_id": f"q{q}".encode()}, docs).SerializeToString())
    assert len(requests_lib.read_records_until([path], lists=8, documents=100)) == 20
    assert len(requests_lib.read_records_until([path], lists=8, documents=10)) == 8
    assert len(requests_lib.read_records_until([path], lists=8, documents=10_000)) == 500  # all there are


def test_a_saved_model_graph_that_cannot_be_read_is_left_to_the_check_process(tmp_path):
    # No op packages to import, and no crash: the check process's load then gives the verdict.
    assert check_executor._op_packages(str(tmp_path)) == []  # no saved_model.pb
    (tmp_path / "saved_model.pb").write_bytes(b"\x0a\xff\xff not a proto")
    assert check_executor._op_packages(str(tmp_path)) == []
    result = check_executor.run_probe(str(tmp_path), [], [], 1, 300, str(tmp_path))
    assert any("does not load in a plain TensorFlow process" in failure for failure in result["failures"])
