"""Baselines beside the pipeline, on exactly the pipeline's lists (benchmark code, not a component).

* ``read_split``: one split of a run's ElwcExampleGen output (``Split-<name>/*.gz`` ELWC
  TFRecords) as numpy arrays, decoded by the pipeline's own ELWC decoder
  (``modules.transform.decoder``), with the schema defaults filled where a value is missing
  (as Transform's ``fill_defaults`` does). One record = one list, in file order: the order
  the RankingEvaluator reads them in.
* ``lightgbm_default``: LightGBM's ``LGBMRanker`` with its default parameters.
* ``lightgbm_cv``: ``LGBMRanker`` tuned by a random search with grouped K-fold
  cross-validation over the training lists (a query is never split across folds), early
  stopping choosing the number of trees; then refitted on all training lists.
* ``simple_pipeline``: TF-Ranking's ``tfr.keras.pipeline.SimplePipeline`` (DNN scorer,
  softmax loss) reading the run's train and eval ELWC TFRecords, scored on the test records.
* ``score_table``: every ranker's per-list metrics on one split, computed by the
  RankingEvaluator's own ``ListTable`` (``modules.ranking_metrics``: full lists, tie-aware,
  lists without a relevant document counted but not averaged).

LightGBM (and scikit-learn's ``GroupKFold``) are benchmark-only dependencies.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from modules.features import FeatureSet, Role

# LightGBM's OpenMP threads spin while they wait by default: on cores shared with other
# processes that made a 100-tree fit ~6x slower here (54 s vs 8 s). Passive waiting
# must be set before the OpenMP runtime loads (with ``import lightgbm``).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SPLIT_DIR = "Split-{}"


@dataclasses.dataclass(frozen=True)
class ListArrays:
    """One split's lists as flat arrays: list i holds rows ``offsets[i]:offsets[i+1]``."""

    query_ids: np.ndarray  # [lists] str
    groups: np.ndarray  # [lists] int64, documents per list
    features: np.ndarray  # [documents, F] float32; schema defaults where missing
    labels: np.ndarray  # [documents] float64; 0 where missing (as the RankingEvaluator scores them)
    feature_names: tuple[str, ...]
    missing_labels: int = 0  # documents without a label
    skipped_features: tuple[str, ...] = ()  # model features the numeric arrays cannot hold (strings)

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate(([0], np.cumsum(self.groups)))

    @property
    def lists(self) -> int:
        return int(self.groups.size)

    def take(self, list_indices: np.ndarray) -> ListArrays:
        """The lists ``list_indices`` (in that order), rows kept contiguous per list."""
        offsets = self.offsets
        rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in list_indices])
        return dataclasses.replace(
            self,
            query_ids=self.query_ids[list_indices],
            groups=self.groups[list_indices],
            features=self.features[rows],
            labels=self.labels[rows],
            missing_labels=0,
        )

    def per_list(self, scores: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(labels, scores) of each list."""
        if scores.shape != self.labels.shape:
            raise ValueError(f"{scores.shape[0]} scores for {self.labels.shape[0]} documents")
        offsets = self.offsets
        for start, end in zip(offsets[:-1], offsets[1:], strict=True):
            yield self.labels[start:end], scores[start:end]


def split_files(examples_uri: str, split: str) -> list[str]:
    """The split's record files, in the order the RankingEvaluator reads them."""
    from components.ranking_evaluator.scoring import record_files

    return record_files(os.path.join(examples_uri, SPLIT_DIR.format(split)))


def read_records(files: list[str], batch_size: int = 256) -> Iterator[list[bytes]]:
    from components.ranking_evaluator.scoring import read_batches

    return read_batches(files, batch_size)


def read_split(examples_uri: str, split: str, feature_set: FeatureSet, batch_size: int = 256) -> ListArrays:
    """``Split-<split>`` of an ElwcExampleGen output as arrays (see ``ListArrays``).

    Numeric context features are repeated onto each document of their list and precede the
    document features; string model features are listed in ``skipped_features``.
    """
    import tensorflow as tf

    from modules.features import CONTEXT_BLOCK, DOCUMENT_BLOCK
    from modules.transform.decoder import decode_elwc

    context, document = feature_set.numeric(Role.CONTEXT), feature_set.numeric(Role.DOCUMENT)
    context_defaults = np.asarray([float(f.default) for f in context], dtype=np.float32)
    document_defaults = np.asarray([float(f.default) for f in document], dtype=np.float32)
    label, query_id = feature_set.label.name, feature_set.query_id.name
    query_ids, groups, blocks, labels = [], [], [], []
    missing_labels = 0
    decode = tf.function(lambda records: decode_elwc(records, feature_set))
    for records in read_records(split_files(examples_uri, split), batch_size):
        parsed = decode(tf.constant(records))
        sizes = parsed[DOCUMENT_BLOCK].row_lengths().numpy() if document else None
        list_labels = parsed[label]  # [B, (docs), (values)]
        if sizes is None:
            sizes = list_labels.row_lengths().numpy()
        first = tf.cast(list_labels.values, tf.float64).to_tensor(default_value=np.nan, shape=[None, 1])[:, 0].numpy()
        missing_labels += int(np.isnan(first).sum())
        labels.append(np.nan_to_num(first.astype(np.float64), nan=0.0))
        qids = parsed[query_id].to_tensor(default_value=b"", shape=[None, 1])[:, 0].numpy()
        query_ids.extend(q.decode("utf-8", "replace") for q in qids)
        groups.append(sizes)
        parts = []
        if context:
            values = parsed[CONTEXT_BLOCK].numpy()
            parts.append(np.repeat(np.where(np.isfinite(values), values, context_defaults), sizes, axis=0))
        if document:
            values = parsed[DOCUMENT_BLOCK].flat_values.numpy()
            parts.append(np.where(np.isfinite(values), values, document_defaults))
        blocks.append(np.concatenate(parts, axis=1) if parts else np.zeros((int(sizes.sum()), 0), np.float32))
    strings = (*feature_set.strings(Role.CONTEXT), *feature_set.strings(Role.DOCUMENT))
    width = len(context) + len(document)
    return ListArrays(
        query_ids=np.asarray(query_ids, dtype=object),
        groups=np.concatenate(groups).astype(np.int64) if groups else np.zeros(0, np.int64),
        features=np.concatenate(blocks).astype(np.float32) if blocks else np.zeros((0, width), np.float32),
        labels=np.concatenate(labels) if labels else np.zeros(0),
        feature_names=tuple(f.name for f in (*context, *document)),
        missing_labels=missing_labels,
        skipped_features=tuple(f.name for f in strings),
    )


# --- Scoring: the RankingEvaluator's own per-list table ------------------------------------------


def score_table(arrays: ListArrays, scores: dict[str, np.ndarray]):
    """A ``ListTable`` (the RankingEvaluator's) holding every ranker's metrics on the same lists."""
    from components.ranking_evaluator.metrics import ListTable

    table = ListTable(rankers=tuple(scores))
    offsets = arrays.offsets
    for name, values in scores.items():
        if values.shape != arrays.labels.shape:
            raise ValueError(f"{name}: {values.shape[0]} scores for {arrays.labels.shape[0]} documents")
    for start, end in zip(offsets[:-1], offsets[1:], strict=True):
        table.add(arrays.labels[start:end], {n: s[start:end] for n, s in scores.items()}, {})
    table.missing_labels = arrays.missing_labels
    return table


def serving_scores(saved_model_dir: str, files: list[str], batch_size: int = 64) -> np.ndarray:
    """The scores of a pipeline-exported SavedModel on ``files``' lists, flat in document order
    (the RankingEvaluator's ``ServingScorer``: serialized ELWC in, every document must be kept)."""
    from components.ranking_evaluator.scoring import ServingScorer

    scorer = ServingScorer(saved_model_dir)
    return _flat_scores(files, batch_size, lambda records: scorer(records), saved_model_dir)


def _flat_scores(files: list[str], batch_size: int, score, name: str) -> np.ndarray:
    """Calls ``score(records) -> (scores [B, L], mask [B, L])`` per batch; the scores of each list's documents."""
    from tensorflow_serving.apis import input_pb2

    out = []
    for records in read_records(files, batch_size):
        scores, mask = score(records)
        for i, record in enumerate(records):
            n = len(input_pb2.ExampleListWithContext.FromString(record).examples)
            if int(mask[i].sum()) != n or not mask[i, :n].all():
                raise ValueError(f"{name} scored {int(mask[i].sum())} documents of a list with {n}")
            out.append(scores[i, :n])
    return np.concatenate(out).astype(np.float64)


# --- LightGBM -------------------------------------------------------------------------------------

# The random search's space (each trial draws one value of each, uniformly); n_estimators is
# chosen by early stopping on each fold's held-out lists (at most MAX_TREES, patience EARLY_STOP).
CV_GRID: dict[str, tuple] = {
    "num_leaves": (15, 31, 63, 127),
    "learning_rate": (0.05, 0.1),
    "min_child_samples": (10, 20, 50, 100),
    "colsample_bytree": (0.5, 0.7, 0.9, 1.0),  # LightGBM's feature_fraction
}
CV_FOLDS = 3
CV_TRIALS = 6
MAX_TREES = 500
EARLY_STOP = 25


def _fit(params: dict[str, Any], train: ListArrays, valid: ListArrays | None = None):
    import lightgbm

    ranker = lightgbm.LGBMRanker(**params)
    kwargs: dict[str, Any] = {}
    if valid is not None:
        kwargs = {
            "eval_set": [(valid.features, valid.labels)],
            "eval_group": [valid.groups],
            "eval_at": [10],
            "callbacks": [lightgbm.early_stopping(EARLY_STOP, verbose=False)],
        }
    ranker.fit(train.features, train.labels, group=train.groups, **kwargs)
    return ranker


def lightgbm_default(train: ListArrays, seed: int):
    """``LGBMRanker`` with its default parameters (lambdarank, 100 trees, 31 leaves, rate 0.1)."""
    return _fit({"random_state": seed, "verbose": -1}, train)


def grouped_folds(query_ids: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train list indices, held-out list indices) per fold; all lists of a query in one fold."""
    from sklearn.model_selection import GroupKFold

    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    index = np.arange(len(query_ids))
    return [(np.sort(a), np.sort(b)) for a, b in splitter.split(index, groups=query_ids)]


def sample_configs(trials: int, seed: int) -> list[dict[str, Any]]:
    """``trials`` distinct random draws from ``CV_GRID``."""
    rng = np.random.default_rng([seed, 14])
    configs: list[dict[str, Any]] = []
    space = 1
    for values in CV_GRID.values():
        space *= len(values)
    while len(configs) < min(trials, space):
        config = {name: values[int(rng.integers(len(values)))] for name, values in CV_GRID.items()}
        if config not in configs:
            configs.append(config)
    return configs


def lightgbm_cv(
    train: ListArrays, seed: int, folds: int = CV_FOLDS, trials: int = CV_TRIALS, max_trees: int = MAX_TREES
) -> tuple[Any, dict[str, Any]]:
    """Random search over ``CV_GRID`` by grouped K-fold CV on ``train``; returns the refit ranker and the search.

    Each configuration is fitted on K-1 folds with early stopping on the held-out fold
    (LightGBM's ndcg@10), and scored there by the pipeline's NDCG@10; the best mean wins and
    is refitted on all of ``train`` with the mean of its folds' best iteration counts.
    """
    split = grouped_folds(train.query_ids, folds, seed)
    trials_done = []
    for config in sample_configs(trials, seed):
        params = {**config, "n_estimators": max_trees, "random_state": seed, "verbose": -1}
        fold_ndcg, fold_trees = [], []
        for fit_lists, held_lists in split:
            fit, held = train.take(fit_lists), train.take(held_lists)
            ranker = _fit(params, fit, held)
            scores = ranker.predict(held.features, num_iteration=ranker.best_iteration_)
            fold_ndcg.append(score_table(held, {"m": scores}).summary("m")["metrics"]["ndcg_10"])
            fold_trees.append(int(ranker.best_iteration_ or max_trees))
        trials_done.append(
            {**config, "cv_ndcg_10": float(np.mean(fold_ndcg)), "n_estimators": int(np.mean(fold_trees))}
        )
    best = max(trials_done, key=lambda t: t["cv_ndcg_10"])
    return lightgbm_refit(train, best, seed), {"folds": folds, "seed": seed, "trials": trials_done, "best": best}


def lightgbm_refit(train: ListArrays, best: dict[str, Any], seed: int):
    """The configuration a search chose (``CV_GRID`` values and ``n_estimators``), fitted on all of ``train``."""
    params = {name: best[name] for name in (*CV_GRID, "n_estimators")}
    return _fit({**params, "random_state": seed, "verbose": -1}, train)


# --- TF-Ranking's SimplePipeline -------------------------------------------------------------------

SIMPLE_PIPELINE = {
    "hidden_layer_dims": [256, 128, 64],
    "dropout": 0.2,
    "learning_rate": 0.001,
    "train_batch_size": 32,
    "list_size": 200,  # the pipeline's max_list_size: whole lists
    "num_epochs": 5,
    "steps_per_epoch": 100,
    "loss": "softmax_loss",
}


def simple_pipeline(
    examples_uri: str, feature_set: FeatureSet, seed: int, model_dir: str, settings: dict[str, Any] | None = None
) -> str:
    """Trains ``tfr.keras.pipeline.SimplePipeline`` on ``Split-train``, selecting the epoch by
    NDCG@10 on ``Split-eval``; returns the exported SavedModel (the best epoch's weights).

    Inputs: every numeric model feature as a ``FixedLenFeature`` with its schema default,
    symmetric log1p (TF-Ranking's own example preprocessing), input batch normalisation,
    a DNN scorer with batch normalisation and dropout, softmax loss, Adam.
    """
    import tensorflow as tf
    import tensorflow_ranking as tfr

    settings = {**SIMPLE_PIPELINE, **(settings or {})}
    tf.keras.utils.set_random_seed(seed)
    context = {
        f.name: tf.io.FixedLenFeature([1], tf.float32, default_value=float(f.default))
        for f in feature_set.numeric(Role.CONTEXT)
    }
    example = {
        f.name: tf.io.FixedLenFeature([1], tf.float32, default_value=float(f.default))
        for f in feature_set.numeric(Role.DOCUMENT)
    }
    label = (feature_set.label.name, tf.io.FixedLenFeature([1], tf.int64, default_value=-1))
    mask = "list_mask"

    def log1p(t):
        return tf.math.log1p(tf.abs(t)) * tf.sign(t)

    preprocess = {name: log1p for name in (*context, *example)}
    model_builder = tfr.keras.model.ModelBuilder(
        input_creator=tfr.keras.model.FeatureSpecInputCreator(context, example),
        preprocessor=tfr.keras.model.PreprocessorWithSpec(preprocess),
        scorer=tfr.keras.model.DNNScorer(
            hidden_layer_dims=settings["hidden_layer_dims"],
            output_units=1,
            activation=tf.nn.relu,
            input_batch_norm=True,
            use_batch_norm=True,
            batch_norm_moment=0.99,
            dropout=settings["dropout"],
        ),
        mask_feature_name=mask,
        name="simple_pipeline",
    )
    files = {s: os.path.join(examples_uri, SPLIT_DIR.format(s), "*") for s in ("train", "eval")}
    eval_lists = sum(1 for batch in read_records(glob.glob(files["eval"])) for _ in batch)
    dataset_hparams = tfr.keras.pipeline.DatasetHparams(
        train_input_pattern=files["train"],
        valid_input_pattern=files["eval"],
        train_batch_size=settings["train_batch_size"],
        valid_batch_size=64,
        list_size=settings["list_size"],
        dataset_reader=functools.partial(tf.data.TFRecordDataset, compression_type="GZIP"),
    )
    pipeline_hparams = tfr.keras.pipeline.PipelineHparams(
        model_dir=model_dir,
        num_epochs=settings["num_epochs"],
        steps_per_epoch=settings["steps_per_epoch"],
        validation_steps=-(-eval_lists // 64),
        learning_rate=settings["learning_rate"],
        loss=settings["loss"],
        export_best_model=True,
        best_exporter_metric="ndcg_10",
        best_exporter_metric_higher_better=True,
        strategy=None,
    )
    dataset_builder = tfr.keras.pipeline.SimpleDatasetBuilder(context, example, mask, label, dataset_hparams)
    tfr.keras.pipeline.SimplePipeline(model_builder, dataset_builder, pipeline_hparams).train_and_validate(verbose=0)
    return os.path.join(model_dir, "export", "best_model_by_metric")


def simple_pipeline_scores(saved_model_dir: str, files: list[str], batch_size: int = 64) -> np.ndarray:
    """Scores of a SimplePipeline export (its ``predict`` signature, serialized ELWC), flat per document."""
    import tensorflow as tf

    predict = tf.saved_model.load(saved_model_dir).signatures[tf.saved_model.PREDICT_METHOD_NAME]

    def score(records):
        from tensorflow_serving.apis import input_pb2

        scores = next(iter(predict(tf.constant(records)).values())).numpy()
        # The signature pads each list to the batch's longest; its own documents come first.
        lengths = np.asarray([len(input_pb2.ExampleListWithContext.FromString(r).examples) for r in records])
        return scores, np.arange(scores.shape[1])[None, :] < lengths[:, None]

    return _flat_scores(files, batch_size, score, saved_model_dir)


def timed(fn, *args, **kwargs) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def dump(path: str, payload: dict[str, Any]) -> None:
    with open(path, "w") as handle:
        json.dump(payload, handle, indent=2, default=float)
