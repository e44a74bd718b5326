"""Scores serialized ELWC with SavedModels' serving signature, list by list.

The models see exactly what TF Serving would be sent (serialized ELWC, ``[B]``
strings); labels, positions and slice values are read from the same protos in
Python, so each model's own parsing and Transform graph are part of what is evaluated.
One pass over the split scores every ranker on each batch, so all of them are
judged on the same lists.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import input_pb2

from components.ranking_evaluator.metrics import ListTable
from modules.serving import loading

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


def _value(feature) -> float | str | None:
    if feature is None:
        return None
    for values in (feature.int64_list.value, feature.float_list.value, feature.bytes_list.value):
        if values:
            value = values[0]
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else float(value)
    return None


@dataclasses.dataclass(frozen=True)
class ParsedList:
    labels: np.ndarray
    missing_labels: int
    positions: np.ndarray | None  # None unless every document has one
    context: dict[str, float | str | None]
    # Every document's position, 0 where it has none (what training reads); empty without a position key.
    document_positions: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))


@dataclasses.dataclass(frozen=True)
class Keys:
    label: str
    position: str | None = None
    slices: tuple[str, ...] = ()  # context features to slice by


def parse_list(record: bytes, keys: Keys) -> ParsedList:
    elwc = input_pb2.ExampleListWithContext.FromString(record)
    labels = [_value(e.features.feature.get(keys.label)) for e in elwc.examples]
    positions = [_value(e.features.feature.get(keys.position)) for e in elwc.examples] if keys.position else []
    return ParsedList(
        labels=np.asarray([0.0 if v is None else v for v in labels], dtype=np.float64),
        missing_labels=sum(v is None for v in labels),
        positions=np.asarray(positions, dtype=np.float64) if positions and None not in positions else None,
        context={name: _value(elwc.context.features.feature.get(name)) for name in keys.slices},
        document_positions=np.asarray([0.0 if v is None else v for v in positions], dtype=np.float64),
    )


def trivial_scores(parsed: ParsedList) -> np.ndarray:
    """The trivial ranker's scores: the logged order (``-position``) where every document
    has a position, otherwise a constant, i.e. a uniformly random order under the
    tie-aware metric (its exact expectation, no sampling)."""
    if parsed.positions is not None:
        return -parsed.positions
    return np.zeros(parsed.labels.size, dtype=np.float64)


class ServingScorer:
    """Calls ``serving_default`` of a SavedModel exported by the Trainer."""

    def __init__(self, saved_model_dir: str):
        self.path = saved_model_dir
        loaded = loading.load(saved_model_dir)  # TF-DF's ops too, for a trees model
        if SIGNATURE not in loaded.signatures:
            raise ValueError(f"SavedModel '{saved_model_dir}' has no '{SIGNATURE}' signature")
        self._loaded = loaded  # Keeps the variables alive.
        self._serve = loaded.signatures[SIGNATURE]

    def __call__(self, records: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        outputs = self._serve(**{INPUT_KEY: tf.constant(records)})
        return outputs["scores"].numpy(), outputs["mask"].numpy()


def _list_scores(scorer: ServingScorer, scores: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    if int(mask.sum()) != n or not mask[:n].all():
        raise ValueError(
            f"model '{scorer.path}' scored {int(mask.sum())} documents of a list with {n}: "
            "the serving signature does not keep every document"
        )
    return scores[:n]


def score_lists(
    batches: Iterable[list[bytes]],
    keys: Keys,
    scorers: dict[str, ServingScorer],
    trivial: str = "trivial",
    gain_weights: Callable[[np.ndarray], np.ndarray] | None = None,
) -> ListTable:
    """Per-list metrics of every scorer and of the trivial ranker (under ``trivial``), on the same lists.

    ``gain_weights``: document positions (0: none) -> per-document gain weights, the same
    for every ranker of a list (propensity-weighted NDCG); None: unweighted.
    """
    if gain_weights is not None and not keys.position:
        raise ValueError("propensity-weighted evaluation needs the schema's 'role:position' feature")
    table = ListTable(rankers=(*scorers, trivial), slice_features=keys.slices)
    for records in batches:
        outputs = {name: scorer(records) for name, scorer in scorers.items()}
        for i, record in enumerate(records):
            parsed = parse_list(record, keys)
            n = parsed.labels.size
            ranked = {
                name: _list_scores(scorers[name], scores[i], mask[i], n) for name, (scores, mask) in outputs.items()
            }
            ranked[trivial] = trivial_scores(parsed)
            weights = None if gain_weights is None else gain_weights(parsed.document_positions)
            table.add(parsed.labels, ranked, parsed.context, parsed.missing_labels, weights)
    return table
