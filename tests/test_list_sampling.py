"""Training samples list_size documents of each list afresh every batch; validation sees full lists."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from components.elwc_example_gen.elwc import elwc_from_values
from modules.features import DOCUMENT_BLOCK, MASK_KEY, Role
from modules.training.config import TrainingConfig
from modules.training.inputs import FnInputs, ModelInputs
from modules.transform.preprocessing import transform_features

DOCS, LIST_SIZE = 100, 8


class _TransformOutput:
    """Stands in for Transform's output: the preprocessing graph without analyzers."""

    def __init__(self, feature_set):
        self.feature_set = feature_set

    def transform_features_layer(self):
        return lambda raw: transform_features(raw, self.feature_set)


@pytest.fixture
def inputs(feature_set, tmp_path):
    """One long list: document i has rating i (a passthrough feature) and label i % 5."""
    documents = [{"rating": float(i), "label": i % 5, "doc_id": f"d{i}".encode()} for i in range(DOCS)]
    short = [{"rating": 1000.0 + i, "label": 1} for i in range(3)]
    path = str(tmp_path / "lists.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        writer.write(elwc_from_values({"query_id": b"long"}, documents).SerializeToString())
        writer.write(elwc_from_values({"query_id": b"short"}, short).SerializeToString())
    config = TrainingConfig(batch_size=2, list_size=LIST_SIZE, seed=3)
    fn_inputs = FnInputs(feature_set, _TransformOutput(feature_set), config)
    fn_inputs.__dict__["model_inputs"] = ModelInputs.from_feature_set(feature_set, ids={})
    return fn_inputs, path


def _rating(features, feature_set) -> np.ndarray:
    column = [f.name for f in feature_set.numeric(Role.DOCUMENT)].index("rating")
    return features[DOCUMENT_BLOCK].numpy()[..., column]


def test_sampling_covers_every_document_of_a_long_list_over_epochs(inputs, feature_set):
    fn_inputs, path = inputs
    seen: set[int] = set()
    draws = []
    for features, labels in fn_inputs.dataset([path], train=True).take(150):
        ratings, labels, mask = _rating(features, feature_set), labels.numpy(), features[MASK_KEY].numpy()
        assert ratings.shape == (2, LIST_SIZE)
        for row in range(2):
            real = ratings[row][mask[row]]
            if real.min() >= 1000:  # the short list: all 3 documents, padded
                assert sorted(real.tolist()) == [1000.0, 1001.0, 1002.0] and mask[row].sum() == 3
                continue
            assert mask[row].all() and len(set(real.tolist())) == LIST_SIZE  # no document twice
            # Labels travel with their documents.
            assert (labels[row] == real.astype(int) % 5).all()
            seen.update(int(r) for r in real)
            draws.append(tuple(real.tolist()))
    assert seen == set(range(DOCS))  # every document, not only the first LIST_SIZE by position
    assert len(set(draws)) == len(draws)  # a new draw every time


def test_sampling_is_reproducible_for_a_seed(inputs, feature_set):
    fn_inputs, path = inputs
    first = [_rating(f, feature_set) for f, _ in fn_inputs.dataset([path], train=True).take(5)]
    second = [_rating(f, feature_set) for f, _ in fn_inputs.dataset([path], train=True).take(5)]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)  # the same draws, in the same order


def test_validation_uses_full_lists(inputs, feature_set):
    fn_inputs, path = inputs
    batches = list(fn_inputs.dataset([path], train=False))
    assert len(batches) == 1  # one pass
    features, labels = batches[0]
    ratings, mask = _rating(features, feature_set), features[MASK_KEY].numpy()
    assert ratings.shape == (2, DOCS)  # padded to the longest list, not cut to list_size
    assert mask[0].all() and mask[1].sum() == 3
    assert ratings[0].tolist() == [float(i) for i in range(DOCS)]  # every document, in order
    assert (labels.numpy()[1, 3:] == -1).all()  # padding is masked out of the metrics
