"""The ``trees`` scorer: TF Decision Forests' gradient-boosted trees with its ranking task.

``TreesRanker`` is a Keras model with the neural models' contract: the same
transformed, densified inputs (numeric blocks, id features, mask) in, scores
``[B, L]`` out. Inside, every (list, document) position becomes one row of
``[context block, document block, ids]`` for a ``tfdf.keras.GradientBoostedTreesModel``
(task RANKING, LambdaMART on NDCG, lists as ranking groups). It is trained on the
Transform outputs of the train split, full lists, which YDF reads from CSV files of those
rows written under the work dir (``fit_lists``); its early stopping holds out every
10th train list, never the eval split, so the eval NDCG that
selects among trials is as unseen for the trees as for the neural models. Exported by
``modules.serving.signatures`` with the same signatures and Transform graph as the
neural models. Serving it needs TF-DF's inference ops: TF Serving >= 2.11 has them
built in; a Python process must ``import tensorflow_decision_forests`` before loading.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import tensorflow as tf
import tensorflow_decision_forests as tfdf
from yggdrasil_decision_forests.dataset import data_spec_pb2

from modules.features import CONTEXT_BLOCK, DOCUMENT_BLOCK, MASK_KEY
from modules.training.inputs import ModelInputs

ROWS_KEY = "x"
GROUP_KEY = "list"
LABEL_KEY = "label"
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
        self.hyperparameters = {
            "num_trees": trees,
            "max_depth": depth,
            "shrinkage": shrinkage,
            "random_seed": seed,
        }
        self.gbt: tfdf.keras.GradientBoostedTreesModel | None = None  # made by fit_lists

    def call(self, features, training=False):
        if self.gbt is None:
            raise ValueError("the trees are not trained yet: call fit_lists first")
        rows = document_rows(features, self.model_inputs)
        shape = tf.shape(rows)
        scores = self.gbt({ROWS_KEY: tf.reshape(rows, [-1, shape[2]])}, training=False)
        return tf.reshape(scores, shape[:2])

    @property
    def serving_dependencies(self) -> tf.Module:
        """What the exported SavedModel must track besides variables: the forest and its assets."""
        return self.gbt

    def fit_lists(self, train: tf.data.Dataset, work_dir: str) -> dict[str, int]:
        """Trains on every real document of one pass over ``train`` (full lists, ``(features, labels)``).

        Every ``HOLDOUT_EVERY``-th list is held out for the trees' early stopping: a fixed,
        whole-list choice (YDF's own ``validation_ratio`` sampling is not reproducible here).
        The rows go to CSV files under ``work_dir`` batch by batch, and YDF trains from them
        (``fit_on_dataset_path``): its in-memory copy of the rows lives only while it trains.
        Fed through Keras instead, TF-DF accumulates them in TensorFlow resources that it never
        deletes, so each trained forest left its training data resident for the rest of the
        process (~130 MiB at 2,000 MSLR-shaped queries). YDF's model files also stay under
        ``work_dir`` (TF-DF's default is a new temporary folder).
        """
        data_dir = os.path.join(work_dir, "trees_data")
        tf.io.gfile.makedirs(data_dir)
        paths = {part: os.path.join(data_dir, f"{part}.csv") for part in ("train", "valid")}
        counts = _write_rows_csv(train, self.model_inputs, paths)
        if counts["train"] == 0 and counts["valid"]:  # too few lists to hold some out: train on all
            counts = _write_rows_csv(train, self.model_inputs, {"train": paths["train"], "valid": None})
        if counts["train"] == 0:
            raise ValueError("no lists to train the trees on")
        width = _row_width(self.model_inputs)
        self.gbt = _FileTrainedTrees(
            task=tfdf.keras.Task.RANKING,
            ranking_group=GROUP_KEY,
            loss=LOSS,
            # Histogram splits over 255 bins, as LightGBM: ~6x faster on 136 features than
            # YDF's exact split search, for the same kind of trees.
            discretize_numerical_features=True,
            temp_directory=os.path.join(work_dir, "ydf"),
            verbose=0,
            **self.hyperparameters,
        )
        try:
            self.gbt.fit_on_dataset_path(
                train_path=paths["train"],
                label_key=LABEL_KEY,
                valid_path=paths["valid"] if counts["valid"] else None,
                dataset_format="csv",
                max_num_scanned_rows_to_accumulate_statistics=None,  # the bins from every row
                try_resume_training=False,
                # Served as the Keras path fed it: one [rows, F] input, unrolled by TF-DF to x.0, x.1, ...
                input_model_signature_fn=lambda _: {ROWS_KEY: tf.TensorSpec([None, width], tf.float32)},
            )
        finally:
            tf.io.gfile.rmtree(data_dir)
        return {"train_documents": counts["train"], "trees": int(self.gbt.make_inspector().num_trees())}


class _FileTrainedTrees(tfdf.keras.GradientBoostedTreesModel):
    """TF-DF's gradient-boosted trees trained from files, served from one ``[rows, F]`` input.

    ``fit_on_dataset_path`` builds the inference graph from the trained model's columns:
    one input per column (``x.0``, ``x.1``, ...), with a semantic from its type, and TF-DF 1.8
    knows none for a ``DISCRETIZED_NUMERICAL`` column ("Non conversion available for 9").
    The model is built as the Keras ``fit`` path builds it instead: one NUMERICAL input
    ``x``, which TF-DF unrolls into those columns (YDF applies the bins to the raw floats).
    """

    def _set_from_yggdrasil_model(self, inspector, *args, **kwargs):
        return super()._set_from_yggdrasil_model(_RowsInput(inspector), *args, **kwargs)


class _RowsInput:
    """A model inspector whose input features are one numerical ``x``, unrolled to its columns."""

    def __init__(self, inspector):
        columns = inspector.features()
        if not columns or any(not column.name.startswith(f"{ROWS_KEY}.") for column in columns):
            raise ValueError(f"the trees' input columns are not {ROWS_KEY}.0, {ROWS_KEY}.1, ...: {columns[:3]}")
        self._inspector = inspector
        self._rows = columns[0]._replace(name=ROWS_KEY, type=data_spec_pb2.NUMERICAL)

    def features(self):
        return [self._rows]

    def __getattr__(self, name):
        return getattr(self._inspector, name)


def _row_width(model_inputs: ModelInputs) -> int:
    """Columns of ``document_rows``: the context block, context ids, document block, document ids."""
    return (
        model_inputs.context_block
        + len(model_inputs.context_ids)
        + model_inputs.document_block
        + len(model_inputs.document_ids)
    )


def _write_rows_csv(
    dataset: tf.data.Dataset, model_inputs: ModelInputs, paths: dict[str, str | None]
) -> dict[str, int]:
    """Writes the real documents (mask and a label) of one pass over ``dataset`` as CSV rows
    ``list, label, x.0 .. x.F-1`` (``list``: the index of the document's list, its ranking group),
    one batch at a time: every ``HOLDOUT_EVERY``-th list to ``paths["valid"]`` (None: to
    ``train`` too). Returns the documents written to each."""
    width = _row_width(model_inputs)
    names = [GROUP_KEY, LABEL_KEY] + [f"{ROWS_KEY}.{j}" for j in range(width)]
    schema = pa.schema([(GROUP_KEY, pa.int64()), (LABEL_KEY, pa.float32())] + [(n, pa.float32()) for n in names[2:]])
    writers = {part: pacsv.CSVWriter(path, schema) for part, path in paths.items() if path is not None}
    counts = dict.fromkeys(paths, 0)
    offset = 0

    @tf.function(reduce_retracing=True)  # batches of full lists differ in length: one generic trace
    def flat(features):
        return document_rows(features, model_inputs), features[MASK_KEY]

    try:
        for features, batch_labels in dataset:
            batch_rows, mask = flat(features)
            labels = batch_labels.numpy()
            keep = mask.numpy() & (labels >= 0)
            list_ids = np.broadcast_to(np.arange(keep.shape[0], dtype=np.int64)[:, None] + offset, keep.shape)
            offset += keep.shape[0]
            rows, groups, labels = batch_rows.numpy()[keep], list_ids[keep], labels[keep].astype(np.float32)
            held_out = (groups % HOLDOUT_EVERY == HOLDOUT_EVERY - 1) & ("valid" in writers)
            for part, chosen in (("train", ~held_out), ("valid", held_out)):
                if chosen.any():
                    columns = [pa.array(groups[chosen]), pa.array(labels[chosen])]
                    columns += [pa.array(column) for column in np.ascontiguousarray(rows[chosen].T)]
                    writers[part].write_table(pa.Table.from_arrays(columns, schema=schema))
                    counts[part] += int(chosen.sum())
    finally:
        for writer in writers.values():
            writer.close()
    return counts
