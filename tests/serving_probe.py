"""Run in a fresh process by test_serving.py: load the SavedModel with plain TensorFlow.

Imports neither this project nor TF-Ranking / tf.Transform / struct2tensor, like a
TF Serving process would. Reads serialized ELWC records (a TFRecord file), calls the
signatures and writes their outputs to an .npz file.
argv: model_dir records out.npz context_names.json op_packages.json
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import input_pb2  # noqa: E402


def columns(elwc, names, context_names):
    """ELWC -> {feature: [N, 1] float32 with NaN where missing} for predict_tensors."""
    out = {}
    for name in names:
        rows = [elwc.context] if name in context_names else list(elwc.examples)
        values = []
        for example in rows:
            feature = example.features.feature.get(name)
            held = list(feature.float_list.value or feature.int64_list.value) if feature else []
            values.append(float(held[0]) if held else np.nan)
        out[name] = tf.constant(np.array(values, np.float32).reshape(-1, 1))
    return out


def _load(model_dir, op_packages):
    """As the ServingCheck's probe: the op packages the test read from the graph (TF-DF only for trees)."""
    import importlib

    for package in op_packages:
        importlib.import_module(package)
    return tf.saved_model.load(model_dir)


def main(model_dir, records_path, out_path):
    model = _load(model_dir, json.loads(sys.argv[5]))
    records = [r.numpy() for r in tf.data.TFRecordDataset(records_path)]
    elwc_out = model.signatures["serving_default"](examples=tf.constant(records))
    transformed = model.signatures["transform_features"](examples=tf.constant(records))
    tensors = model.signatures["predict_tensors"]
    names = list(tensors.structured_input_signature[1])
    context_names = set(json.loads(sys.argv[4]))
    tensor_scores = [
        tensors(**columns(input_pb2.ExampleListWithContext.FromString(r), names, context_names))["scores"].numpy()
        for r in records
    ]
    arrays = {"scores": elwc_out["scores"].numpy(), "mask": elwc_out["mask"].numpy()}
    arrays.update({f"transformed/{k}": v.numpy() for k, v in transformed.items()})
    arrays.update({f"tensor_scores/{i}": s for i, s in enumerate(tensor_scores)})
    for i, record in enumerate(records):
        single = model.signatures["serving_default"](examples=tf.constant([record]))["scores"].numpy()[0]
        arrays[f"single_scores/{i}"] = single
    leaked = sorted(
        {m.split(".")[0] for m in sys.modules}
        & {"tensorflow_ranking", "tensorflow_transform", "struct2tensor", "modules", "components", "pipeline"}
    )
    arrays["leaked_modules"] = np.array(leaked, dtype=object)
    np.savez(out_path, **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:4])
