"""Training samples list_size documents of each list afresh every batch; validation sees full lists."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from components.elwc_example_gen.elwc import elwc_from_values
from modules.features import DOCUMENT_BLOCK, MASK_KEY, Role
from modules.training import inputs as inputs_lib
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


def _lists_seen(dataset, feature_set, batches: int) -> dict[str, list]:
    """Per list (told apart by its ratings), the sorted (rating, label) pairs of each draw."""
    seen: dict[str, list] = {"long": [], "short": []}
    for features, labels in dataset.take(batches):
        ratings, labels, mask = _rating(features, feature_set), labels.numpy(), features[MASK_KEY].numpy()
        for row in range(len(ratings)):
            pairs = sorted(zip(ratings[row][mask[row]].tolist(), labels[row][mask[row]].tolist(), strict=True))
            seen["short" if pairs[0][0] >= 1000 else "long"].append(pairs)
    return seen


def test_cached_and_streamed_training_data_hold_the_same_documents(inputs, feature_set, monkeypatch):
    """A small split is decoded once and replayed from memory; what training sees is unchanged:
    the same lists, the same documents with their labels, list_size of them, drawn afresh."""
    fn_inputs, path = inputs
    assert inputs_lib.cached_lists([path]) == 2  # two lists, far below the byte budget
    cached = _lists_seen(fn_inputs.dataset([path], train=True), feature_set, 150)
    monkeypatch.setattr(inputs_lib, "CACHE_SERIALIZED_BYTES", 1)  # nothing fits: streamed from the files
    assert inputs_lib.cached_lists([path]) is None
    streaming = FnInputs(fn_inputs.feature_set, fn_inputs.tft_output, fn_inputs.config)
    streaming.__dict__["model_inputs"] = fn_inputs.model_inputs
    assert not streaming.in_memory([path]) and streaming.count_lists([path]) == 2  # counted from the files
    streamed = _lists_seen(fn_inputs.dataset([path], train=True), feature_set, 150)
    for seen in (cached, streamed):
        assert len(seen["long"]) == len(seen["short"]) == 150  # every batch holds both lists (a full reshuffle)
        assert all(draw == [(1000.0 + i, 1) for i in range(3)] for draw in seen["short"])
        long_docs = {rating for draw in seen["long"] for rating, _ in draw}
        assert long_docs == {float(i) for i in range(DOCS)}
        assert all(len(draw) == LIST_SIZE and all(label == int(r) % 5 for r, label in draw) for draw in seen["long"])


def test_every_dataset_over_the_same_files_replays_one_decoded_copy(inputs, feature_set):
    """Training, evaluation and a second model's training over one split share the lists decoded
    once (FnInputs.decoded); a dataset built inside a tf.function (ParameterServerStrategy's
    workers) makes its own."""
    fn_inputs, path = inputs
    train = fn_inputs.dataset([path], train=True)
    full = fn_inputs.dataset([path], train=False)
    again = fn_inputs.dataset([path], train=True, seed=11)
    assert fn_inputs.in_memory([path])
    assert list(fn_inputs.decoded) == [((path,), 1, 0)]  # one entry: one decoded copy
    assert fn_inputs.decoded[((path,), 1, 0)][1] == 2  # its two lists
    assert fn_inputs.count_lists([path]) == 2  # the count made when deciding to keep them
    # All three still read the lists as before: full lists in order, and list_size draws.
    features, _ = next(iter(full))
    assert _rating(features, feature_set)[0].tolist() == [float(i) for i in range(DOCS)]
    for dataset in (train, again):
        features, _ = next(iter(dataset))
        assert features[MASK_KEY].numpy().sum(axis=1).tolist() in ([LIST_SIZE, 3], [3, LIST_SIZE])

    @tf.function
    def inside():
        return fn_inputs.dataset([path], train=True)

    inside.get_concrete_function()
    assert len(fn_inputs.decoded) == 1  # nothing kept from the traced function


def test_evaluation_batches_hold_at_most_eight_lists(inputs, feature_set, tmp_path):
    fn_inputs, _ = inputs
    path = str(tmp_path / "many.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for q in range(20):
            documents = [{"rating": float(d), "label": d % 2} for d in range(q % 4 + 1)]
            writer.write(elwc_from_values({"query_id": f"q{q}".encode()}, documents).SerializeToString())
    wide = FnInputs(fn_inputs.feature_set, fn_inputs.tft_output, TrainingConfig(batch_size=32, list_size=LIST_SIZE))
    wide.__dict__["model_inputs"] = fn_inputs.model_inputs
    assert wide.eval_batch_size == inputs_lib.EVAL_BATCH_LISTS == 8
    sizes = [len(labels) for _, labels in wide.dataset([path], train=False)]
    assert sizes == [8, 8, 4]  # every list once, in batches of at most 8
    narrow = FnInputs(fn_inputs.feature_set, fn_inputs.tft_output, TrainingConfig(batch_size=2, list_size=LIST_SIZE))
    assert narrow.eval_batch_size == 2
