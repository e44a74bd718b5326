"""The serving check's fresh process: plain TensorFlow loads the candidate and answers the requests.

Run as a script (``python -I probe.py ...``), never imported: it imports TensorFlow,
numpy and TF Serving's request protos only, like ``tensorflow_model_server``, so a
model that needs this project, TF-Ranking, tf.Transform or a custom op library at
load time fails here as it would fail in TF Serving.

Gradient-boosted trees (the ``trees`` scorer) run on TF Decision Forests' inference
ops (``SimpleML*``), which TF Serving >= 2.11 has built in but a Python TensorFlow
registers only when ``tensorflow_decision_forests`` is imported: the probe imports the
packages it is given, which the ServingCheck reads from the SavedModel's graph
(``modules.serving.loading.op_packages``: TF-DF only when the graph uses such an op), as
that serving binary would have them.

argv: saved_model_dir warmup_requests expectations.json result.json latency_repeats op_packages
(op_packages: comma-separated package names, possibly empty)
Writes result.json: {"failures": [...], "latency_ms": {...}, "leaked_modules": [...]}.
"""

import importlib
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import prediction_log_pb2  # noqa: E402

# What a serving process must not need (checked after the model is loaded and called).
FORBIDDEN_MODULES = {
    "tensorflow_ranking",
    "tensorflow_transform",
    "struct2tensor",
    "tfx",
    "tfx_bsl",
    "apache_beam",
    "modules",
    "components",
    "pipeline",
}


def _message(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return " ".join(text.strip().splitlines()[0].split())[:500]


def _check(name, outputs, expected):
    """Failures of one answer: missing output, wrong shape, non-finite scores, wrong mask."""
    failures = []
    for key, shape in expected["shapes"].items():
        if key not in outputs:
            failures.append(f"{name}: no '{key}' output (has {sorted(outputs)})")
            continue
        value = outputs[key].numpy()
        if list(value.shape) != shape:
            failures.append(f"{name}: '{key}' has shape {list(value.shape)}, expected {shape}")
            continue
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            bad = int((~np.isfinite(value)).sum())
            failures.append(f"{name}: {bad} of {value.size} '{key}' values are not finite (NaN or inf)")
    mask = outputs.get("mask")
    if mask is not None and "mask" in expected["shapes"] and not failures:
        kept = mask.numpy().sum(axis=1).astype(int).tolist()
        if kept != expected["documents"]:
            failures.append(f"{name}: mask keeps {kept} documents per list, the lists have {expected['documents']}")
    return failures


def main(model_dir, warmup_path, expectations_path, result_path, repeats, op_packages):
    result = {"failures": [], "latency_ms": {}, "answered": 0}
    with open(expectations_path) as handle:
        expectations = json.load(handle)
    logs = [
        prediction_log_pb2.PredictionLog.FromString(r) for r in tf.data.TFRecordDataset(warmup_path).as_numpy_iterator()
    ]
    try:
        start = time.perf_counter()
        result["op_packages"] = op_packages
        for package in op_packages:
            importlib.import_module(package)
        model = tf.saved_model.load(model_dir)
        result["load_s"] = time.perf_counter() - start
    except Exception as error:  # Any load failure is the verdict, not a crash.
        result["failures"].append(f"the SavedModel does not load in a plain TensorFlow process: {_message(error)}")
        model = None
    for index, (log, expected) in enumerate(zip(logs, expectations, strict=True)):
        if model is None:
            break
        signature = expected["signature"]
        name = f"request {index} ({signature}, {expected['purpose']}, {sum(expected['documents'])} documents)"
        if signature not in model.signatures:
            result["failures"].append(f"{name}: the model has no '{signature}' signature ({sorted(model.signatures)})")
            continue
        function = model.signatures[signature]
        inputs = {key: tf.constant(tf.make_ndarray(proto)) for key, proto in log.predict_log.request.inputs.items()}
        try:
            outputs = function(**inputs)
        except Exception as error:
            result["failures"].append(f"{name}: the signature failed: {_message(error)}")
            continue
        failures = _check(name, outputs, expected)
        result["failures"].extend(failures)
        result["answered"] += 1
        if failures or expected["purpose"] != "latency":
            continue
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            function(**inputs)["scores"].numpy()
            timings.append((time.perf_counter() - start) * 1000.0)
        key = f"{signature}/{expected['documents'][0]}"
        result["latency_ms"][key] = {
            "p50": float(np.percentile(timings, 50)),
            "p99": float(np.percentile(timings, 99)),
            "calls": repeats,
        }
    result["leaked_modules"] = sorted({m.split(".")[0] for m in sys.modules} & FORBIDDEN_MODULES)
    if result["leaked_modules"]:
        result["failures"].append(f"serving the model imported {result['leaked_modules']}")
    with open(result_path, "w") as handle:
        json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), [p for p in sys.argv[6].split(",") if p])
