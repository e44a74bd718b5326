"""tf.distribute strategy selection from the training config."""

from __future__ import annotations

import tensorflow as tf

from modules.training_config import STRATEGIES


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raise ValueError(f"unknown distribution strategy '{name}' (expected one of {STRATEGIES})")
