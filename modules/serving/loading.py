"""Loading an exported ranking model in Python, whichever scorer it holds.

A neural model's SavedModel uses stock TensorFlow ops only. A ``trees`` model runs on
TF Decision Forests' inference ops (``SimpleML*``): TF Serving >= 2.11 has them built
in, but a Python process registers them only by importing ``tensorflow_decision_forests``.
``load`` reads the graph's op names first and imports such a package only when the
model needs it. (The ServingCheck's probe, a standalone script that must not import this
project, does the same with its own copy: ``components/serving_check/probe.py``.)
"""

from __future__ import annotations

import importlib
import os

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

# Op-name prefix -> the Python package that registers those ops.
OP_PACKAGES = {"SimpleML": "tensorflow_decision_forests"}


def op_packages(model_dir: str) -> list[str]:
    """The packages whose ops the SavedModel's graph (and its functions) use."""
    saved = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(model_dir, "saved_model.pb"), "rb") as handle:
        saved.ParseFromString(handle.read())
    ops = set()
    for graph in saved.meta_graphs:
        ops.update(node.op for node in graph.graph_def.node)
        for function in graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return sorted({package for prefix, package in OP_PACKAGES.items() if any(op.startswith(prefix) for op in ops)})


def load(model_dir: str):
    """``tf.saved_model.load`` after importing the op packages the model needs."""
    for package in op_packages(model_dir):
        importlib.import_module(package)
    return tf.saved_model.load(model_dir)
