"""Scores serialized ELWC with a SavedModel's serving signature and accumulates metrics.

The model sees exactly what TF Serving would be sent (serialized ELWC, ``[B]``
strings); labels are read from the same protos in Python, so the model's own
parsing and Transform graph are part of what is evaluated.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import input_pb2

from components.ranking_evaluator.metrics import MetricAccumulator

SIGNATURE = "serving_default"
INPUT_KEY = "examples"


def record_files(split_uri: str) -> list[str]:
    files = sorted(f for f in glob.glob(os.path.join(split_uri, "*")) if os.path.isfile(f))
    if not files:
        raise FileNotFoundError(f"no example files under '{split_uri}'")
    return files


def read_batches(files: list[str], batch_size: int) -> Iterator[list[bytes]]:
    compression = "GZIP" if all(f.endswith(".gz") for f in files) else ""
    dataset = tf.data.TFRecordDataset(files, compression_type=compression).batch(batch_size)
    for batch in dataset.as_numpy_iterator():
        yield list(batch)


def _first_values(elwc, key: str | None) -> list[float | None]:
    values = []
    for example in elwc.examples:
        feature = example.features.feature.get(key) if key else None
        found = (feature.int64_list.value or feature.float_list.value) if feature is not None else None
        values.append(float(found[0]) if found else None)
    return values


def labels_of(record: bytes, label_key: str) -> tuple[np.ndarray, int]:
    """Per-document labels of one ELWC, and how many documents had no label (taken as 0)."""
    labels = _first_values(input_pb2.ExampleListWithContext.FromString(record), label_key)
    missing = sum(v is None for v in labels)
    return np.asarray([0.0 if v is None else v for v in labels], dtype=np.float64), missing


def trivial_scores(record: bytes, position_key: str | None) -> np.ndarray:
    """The trivial ranker's scores for one list: the logged order (``-position``) where
    every document has a position, otherwise a constant, i.e. a uniformly random order
    under the tie-aware metric (its exact expectation, no sampling)."""
    positions = _first_values(input_pb2.ExampleListWithContext.FromString(record), position_key)
    if position_key and positions and all(p is not None for p in positions):
        return -np.asarray(positions, dtype=np.float64)
    return np.zeros(len(positions), dtype=np.float64)


class ServingScorer:
    """Calls ``serving_default`` of a SavedModel exported by the Trainer."""

    def __init__(self, saved_model_dir: str):
        self.path = saved_model_dir
        loaded = tf.saved_model.load(saved_model_dir)
        if SIGNATURE not in loaded.signatures:
            raise ValueError(f"SavedModel '{saved_model_dir}' has no '{SIGNATURE}' signature")
        self._loaded = loaded  # Keeps the variables alive.
        self._serve = loaded.signatures[SIGNATURE]

    def __call__(self, records: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        outputs = self._serve(**{INPUT_KEY: tf.constant(records)})
        return outputs["scores"].numpy(), outputs["mask"].numpy()


def evaluate_trivial(batches: Iterable[list[bytes]], label_key: str, position_key: str | None) -> MetricAccumulator:
    """Metrics of the trivial ranker (see ``trivial_scores``) on the same lists."""
    accumulator = MetricAccumulator()
    for records in batches:
        for record in records:
            labels, missing = labels_of(record, label_key)
            accumulator.missing_labels += missing
            accumulator.add(labels, trivial_scores(record, position_key))
    return accumulator


def evaluate(scorer: ServingScorer, batches: Iterable[list[bytes]], label_key: str) -> MetricAccumulator:
    accumulator = MetricAccumulator()
    for records in batches:
        scores, mask = scorer(records)
        for i, record in enumerate(records):
            labels, missing = labels_of(record, label_key)
            accumulator.missing_labels += missing
            n = labels.size
            if int(mask[i].sum()) != n or not mask[i, :n].all():
                raise ValueError(
                    f"model '{scorer.path}' scored {int(mask[i].sum())} documents of a list with {n}: "
                    "the serving signature does not keep every document"
                )
            accumulator.add(labels, scores[i, :n])
    return accumulator
