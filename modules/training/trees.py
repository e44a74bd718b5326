"""The ``trees`` scorer: TF Decision Forests' gradient-boosted trees with its ranking task.

``TreesRanker`` is a Keras model with the neural models' contract: the same
transformed, densified inputs (numeric blocks, id features, mask) in, scores
``[B, L]`` out. Inside, every (list, document) position becomes one row of
``[context block, document block, ids]`` for a ``tfdf.keras.GradientBoostedTreesModel``
(task RANKING, LambdaMART on NDCG, lists as ranking groups). It is trained on the
Transform outputs of the train split, full lists; its early stopping holds out every
10th train list, never the eval split, so the eval NDCG that
selects among trials is as unseen for the trees as for the neural models. Exported by
``modules.serving.signatures`` with the same signatures and Transform graph as the
neural models. Serving it needs TF-DF's inference ops: TF Serving >= 2.11 has them
built in; a Python process must ``import tensorflow_decision_forests`` before loading.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_decision_forests as tfdf

from modules.features import CONTEXT_BLOCK, DOCUMENT_BLOCK, MASK_KEY
from modules.training.inputs import ModelInputs

ROWS_KEY = "x"
GROUP_KEY = "list"
# YDF's ranking loss (LambdaMART with NDCG@5 lambdas; TF-DF 1.8's only NDCG-based one besides XE_NDCG_MART).
LOSS = "LAMBDA_MART_NDCG5"
HOLDOUT_EVERY = 10  # every 10th train list is the trees' early-stopping set


def document_rows(features: dict[str, tf.Tensor], model_inputs: ModelInputs) -> tf.Tensor:
    """``[B, L, F]``: each document's context block, document block and id features, as floats."""
    mask = features[MASK_KEY]
    lists = tf.shape(mask)[1]
    parts = []
    if model_inputs.context_block:
        context = tf.cast(features[CONTEXT_BLOCK], tf.float32)
        parts.append(tf.tile(context[:, None, :], [1, lists, 1]))
    for name in model_inputs.context_ids:
        parts.append(tf.tile(tf.cast(features[name], tf.float32)[:, None, :], [1, lists, 1]))
    if model_inputs.document_block:
        parts.append(tf.cast(features[DOCUMENT_BLOCK], tf.float32))
    for name in model_inputs.document_ids:
        parts.append(tf.cast(features[name], tf.float32))
    return tf.concat(parts, axis=-1)


class TreesRanker(tf.keras.Model):
    """Gradient-boosted trees scoring every document of a list; see the module docstring."""

    def __init__(self, model_inputs: ModelInputs, trees: int, depth: int, shrinkage: float, seed: int = 0):
        super().__init__(name="trees_ranker")
        self.model_inputs = model_inputs
        self.gbt = tfdf.keras.GradientBoostedTreesModel(
            task=tfdf.keras.Task.RANKING,
            ranking_group=GROUP_KEY,
            loss=LOSS,
            num_trees=trees,
            max_depth=depth,
            shrinkage=shrinkage,
            random_seed=seed,
            # Histogram splits over 255 bins, as LightGBM: ~6x faster on 136 features than
            # YDF's exact split search, for the same kind of trees.
            discretize_numerical_features=True,
            verbose=0,
        )

    def call(self, features, training=False):
        rows = document_rows(features, self.model_inputs)
        shape = tf.shape(rows)
        scores = self.gbt({ROWS_KEY: tf.reshape(rows, [-1, shape[2]])}, training=False)
        return tf.reshape(scores, shape[:2])

    @property
    def serving_dependencies(self) -> tf.Module:
        """What the exported SavedModel must track besides variables: the forest and its assets."""
        return self.gbt

    def fit_lists(self, train: tf.data.Dataset) -> dict[str, int]:
        """Trains on every real document of one pass over ``train`` (full lists, ``(features, labels)``).

        Every ``HOLDOUT_EVERY``-th list is held out for the trees' early stopping: a fixed,
        whole-list choice (YDF's own ``validation_ratio`` sampling is not reproducible here).
        """
        rows, groups, labels = _rows_and_groups(train, self.model_inputs)
        list_ids = groups.astype(np.int64)
        held_out = (list_ids % HOLDOUT_EVERY) == HOLDOUT_EVERY - 1
        if not held_out.any() or held_out.all():
            held_out[:] = False

        train_data = _rows_dataset(rows, groups, labels, ~held_out)
        validation_data = _rows_dataset(rows, groups, labels, held_out) if held_out.any() else None
        # The datasets hold their own copies: drop these before YDF's training, whose peak
        # (hundreds of MB on MSLR-sized data) is the Tuner's.
        del rows, groups, labels
        self.gbt.fit(train_data, validation_data=validation_data, verbose=0)
        return {"train_documents": int((~held_out).sum()), "trees": int(self.gbt.make_inspector().num_trees())}


def _rows_dataset(rows: np.ndarray, groups: np.ndarray, labels: np.ndarray, keep: np.ndarray) -> tf.data.Dataset:
    """The kept rows as YDF's input: rows, their ranking group (as strings) and labels, in batches."""
    features = {ROWS_KEY: rows[keep], GROUP_KEY: groups[keep].astype(str).astype(object)}
    return tf.data.Dataset.from_tensor_slices((features, labels[keep])).batch(8192)


def _rows_and_groups(dataset: tf.data.Dataset, model_inputs: ModelInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real documents only (mask and a label), and the index of their list (the ranking group)."""
    rows, groups, labels = [], [], []
    offset = 0

    @tf.function
    def flat(features):
        return document_rows(features, model_inputs), features[MASK_KEY]

    for features, batch_labels in dataset:
        batch_rows, mask = flat(features)
        keep = mask.numpy() & (batch_labels.numpy() >= 0)
        list_ids = np.broadcast_to(np.arange(keep.shape[0])[:, None] + offset, keep.shape)
        rows.append(batch_rows.numpy()[keep])
        groups.append(list_ids[keep])
        labels.append(batch_labels.numpy()[keep])
        offset += keep.shape[0]
    if not rows:
        raise ValueError("no lists to train the trees on")
    return (
        np.concatenate(rows).astype(np.float32, copy=False),
        np.concatenate(groups),
        np.concatenate(labels).astype(np.float32),
    )
