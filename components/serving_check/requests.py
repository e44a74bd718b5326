"""Warmup requests from real eval lists: TF Serving ``PredictRequest``s for both signatures.

Each request comes with what a correct answer looks like (``Expectation``), which
the check process compares the model's outputs with. The same requests, as
``PredictionLog`` records, become the SavedModel's ``assets.extra/tf_serving_warmup_requests``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import input_pb2, predict_pb2, prediction_log_pb2

# The exported model's signatures (modules/serving.py) and the ELWC input key.
ELWC_SIGNATURE = "serving_default"
TENSORS_SIGNATURE = "predict_tensors"
ELWC_INPUT_KEY = "examples"


@dataclasses.dataclass(frozen=True)
class Expectation:
    """What a correct answer to one request looks like."""

    signature: str
    purpose: str  # "batch": several real lists; "latency": one list of `documents[0]` documents, timed
    documents: list[int]  # documents of each list in the request
    shapes: dict[str, list[int]]  # output name -> exact shape


def read_records(files: Sequence[str], limit: int | None = None) -> list[bytes]:
    """The first ``limit`` serialized ELWC records of ``files``, as written (sent to the model unchanged)."""
    compression = "GZIP" if all(f.endswith(".gz") for f in files) else ""
    dataset = tf.data.TFRecordDataset(list(files), compression_type=compression)
    if limit is not None:
        dataset = dataset.take(limit)
    return list(dataset.as_numpy_iterator())


def read_records_until(files: Sequence[str], lists: int, documents: int) -> list[bytes]:
    """The first serialized ELWC records of ``files``, as few as hold ``lists`` lists and ``documents``
    documents (all of them if the files hold fewer): the requests need no more, and the split may be large."""
    compression = "GZIP" if all(f.endswith(".gz") for f in files) else ""
    records: list[bytes] = []
    seen = 0
    for record in tf.data.TFRecordDataset(list(files), compression_type=compression).as_numpy_iterator():
        records.append(record)
        seen += len(parse(record).examples)
        if len(records) >= lists and seen >= documents:
            break
    return records


def parse(record: bytes) -> input_pb2.ExampleListWithContext:
    return input_pb2.ExampleListWithContext.FromString(record)


def list_of_size(lists: Sequence[input_pb2.ExampleListWithContext], size: int) -> input_pb2.ExampleListWithContext:
    """One list of exactly ``size`` real documents: the first list's context, documents of the
    eval lists in order (repeated from the start where the split holds fewer)."""
    documents = [doc for elwc in lists for doc in elwc.examples]
    if not documents:
        raise ValueError("the eval lists hold no documents")
    merged = input_pb2.ExampleListWithContext()
    merged.context.CopyFrom(lists[0].context)
    merged.examples.extend(itertools.islice(itertools.cycle(documents), size))
    return merged


def signature_inputs(saved_model_dir: str) -> dict[str, dict[str, tf.DType]]:
    """Signature name -> input name -> dtype, read from saved_model.pb without loading the model."""
    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(f"{saved_model_dir}/saved_model.pb", "rb") as handle:
        proto.ParseFromString(handle.read())
    for meta_graph in proto.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return {
                name: {key: tf.as_dtype(info.dtype) for key, info in signature.inputs.items()}
                for name, signature in meta_graph.signature_def.items()
            }
    raise ValueError(f"SavedModel '{saved_model_dir}' has no meta graph tagged 'serve'")


def _request(model_name: str, signature: str, inputs: dict[str, np.ndarray]) -> prediction_log_pb2.PredictionLog:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def elwc_request(
    model_name: str, records: Sequence[bytes], purpose: str
) -> tuple[prediction_log_pb2.PredictionLog, Expectation]:
    """``serving_default`` request: the serialized lists as a ``[B]`` string tensor."""
    counts = [len(parse(record).examples) for record in records]
    shape = [len(records), max(counts, default=0)]
    log = _request(model_name, ELWC_SIGNATURE, {ELWC_INPUT_KEY: np.array(list(records), dtype=object)})
    return log, Expectation(ELWC_SIGNATURE, purpose, counts, {"scores": shape, "mask": shape})


def _column(examples: Sequence[tf.train.Example], name: str, dtype: tf.DType) -> np.ndarray:
    """``[rows, 1]``: each row's first value, NaN / empty string where missing (the graph fills defaults)."""
    values = []
    for example in examples:
        feature = example.features.feature.get(name)
        held = []
        if feature is not None:
            held = list(feature.bytes_list.value or feature.float_list.value or feature.int64_list.value)
        if dtype == tf.string:
            values.append(held[0] if held else b"")
        else:
            values.append(float(held[0]) if held else np.nan)
    array = np.array(values, dtype=object if dtype == tf.string else dtype.as_numpy_dtype)
    return array.reshape(-1, 1)


def tensors_request(
    model_name: str,
    elwc: input_pb2.ExampleListWithContext,
    inputs: dict[str, tf.DType],
    context_names: set[str],
    purpose: str,
) -> tuple[prediction_log_pb2.PredictionLog, Expectation]:
    """``predict_tensors`` request for one list: ``[N, 1]`` per document feature, ``[1, 1]`` per context feature."""
    tensors = {
        name: _column([elwc.context] if name in context_names else list(elwc.examples), name, dtype)
        for name, dtype in inputs.items()
    }
    n = len(elwc.examples)
    log = _request(model_name, TENSORS_SIGNATURE, tensors)
    return log, Expectation(TENSORS_SIGNATURE, purpose, [n], {"scores": [n]})
