"""Serving signatures: raw serialized ELWC in, scores out, Transform graph inside.

The exported SavedModel uses only stock TF ops (``DecodeProtoV2``, ``ParseExample``
and the Transform graph), so TF Serving loads it without this project.
"""

from __future__ import annotations

import tensorflow as tf

from modules.features import MASK_KEY, FeatureSet
from modules.model_inputs import raw_to_model_inputs

SERVING_INPUT_KEY = "examples"


def make_elwc_signature(model: tf.keras.Model, feature_set: FeatureSet) -> tf.types.experimental.ConcreteFunction:
    """``serving_default``: serialized ELWC ``[B]`` -> scores ``[B, L]`` and mask ``[B, L]``.

    ``L`` is the longest list of the request; padded positions have mask False
    and score 0. Missing features get the schema defaults inside the graph.
    """

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_INPUT_KEY)])
    def serve_elwc(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        features, _ = raw_to_model_inputs(examples, feature_set, model.tft_layer, list_size=None)
        mask = features[MASK_KEY]
        scores = model(features, training=False)
        return {"scores": tf.where(mask, scores, tf.zeros_like(scores)), "mask": mask}

    return serve_elwc.get_concrete_function()


def export_serving_model(
    model: tf.keras.Model, tft_layer: tf.keras.layers.Layer, feature_set: FeatureSet, path: str
) -> None:
    model.tft_layer = tft_layer  # Tracked, so the Transform graph is saved with the model.
    signatures = {"serving_default": make_elwc_signature(model, feature_set)}
    model.save(path, save_format="tf", signatures=signatures)
