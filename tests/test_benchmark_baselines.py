"""benchmarks/baselines.py: the baselines read exactly the pipeline's lists, and CV never splits a query."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmarks import baselines
from components.elwc_example_gen.formats import FormatOptions
from modules.features import load_feature_set
from modules.ranking_metrics import mean_ndcg
from pipeline.sample_data import MslrSpec, mslr_schema_text, write_mslr_data
from tests.helpers import run_example_gen

FEATURES = 16  # the hidden relevance uses 16 features
DEFAULT = 2.5  # the schema default of f002: a missing value must read as this, not 0 or NaN


def _letor_rows(text: str) -> dict[str, list[tuple[float, ...]]]:
    """query id -> sorted rows (label, f001..f016), absent indices filled with the schema default."""
    rows: dict[str, list[tuple[float, ...]]] = {}
    for line in text.splitlines():
        tokens = line.split("#")[0].split()
        values = {int(k): float(v) for k, v in (t.split(":") for t in tokens[2:])}
        features = [values.get(j, DEFAULT if j == 2 else 0.0) for j in range(1, FEATURES + 1)]
        rows.setdefault(tokens[1].removeprefix("qid:"), []).append((float(tokens[0]), *features))
    return {q: sorted(r) for q, r in rows.items()}


def test_read_split_gives_each_list_of_the_example_gen_output_with_its_rows(tmp_path):
    spec = MslrSpec(queries=12, mean_docs=6, min_docs=2, max_docs=12, features=FEATURES, missing_fraction=0.2)
    write_mslr_data(tmp_path / "data", spec)
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(
        mslr_schema_text(FEATURES).replace(
            '"f002" type: FLOAT annotation { tag: "role:document" tag: "default:0"',
            f'"f002" type: FLOAT annotation {{ tag: "role:document" tag: "default:{DEFAULT}"',
        )
    )
    text = "".join(p.read_text() for p in sorted((tmp_path / "data" / "span-1").glob("*.txt")))
    expected = _letor_rows(text)
    assert any(row[2] == DEFAULT for rows in expected.values() for row in rows)  # the test sees a missing f002

    examples = run_example_gen(
        tmp_path, {"all": "span-1/*.txt"}, options=FormatOptions(format="letor"), max_bad=0.0, schema=schema
    )
    feature_set = load_feature_set(schema)
    seen: set[str] = set()
    for split in ("train", "eval"):
        arrays = baselines.read_split(examples.uri, split, feature_set)
        assert arrays.feature_names == tuple(f"f{j:03d}" for j in range(1, FEATURES + 1))
        assert arrays.features.shape == (arrays.groups.sum(), FEATURES) and arrays.labels.shape == (
            arrays.groups.sum(),
        )
        assert arrays.missing_labels == 0 and arrays.skipped_features == ()
        assert not set(arrays.query_ids) & seen  # a query is in one split only
        seen |= set(arrays.query_ids)
        offsets = arrays.offsets
        for i, query in enumerate(arrays.query_ids):
            rows = np.column_stack([arrays.labels, arrays.features])[offsets[i] : offsets[i + 1]]
            got = sorted(tuple(float(v) for v in row) for row in rows)
            np.testing.assert_allclose(got, expected[query], rtol=1e-6)  # features are float32 in ELWC
    assert seen == set(expected)


def test_grouped_folds_hold_each_query_out_once_and_never_split_it():
    # 40 lists of 15 queries: some queries have several lists, which must stay in one fold.
    rng = np.random.default_rng(3)
    query_ids = np.asarray([f"q{int(i)}" for i in rng.integers(0, 15, size=40)], dtype=object)
    folds = baselines.grouped_folds(query_ids, 3, seed=5)
    assert len(folds) == 3
    held_out = np.concatenate([held for _, held in folds])
    assert sorted(held_out.tolist()) == list(range(40))  # every list held out exactly once
    for fit, held in folds:
        assert not set(fit) & set(held)
        assert not set(query_ids[fit]) & set(query_ids[held])  # no query on both sides
    # Another seed, another assignment; the same seed, the same one.
    assert [h.tolist() for _, h in baselines.grouped_folds(query_ids, 3, seed=5)] == [h.tolist() for _, h in folds]
    assert [h.tolist() for _, h in baselines.grouped_folds(query_ids, 3, seed=6)] != [h.tolist() for _, h in folds]


def _synthetic(lists: int, seed: int) -> baselines.ListArrays:
    rng = np.random.default_rng(seed)
    groups = rng.integers(5, 15, size=lists)
    x = rng.normal(size=(int(groups.sum()), 4)).astype(np.float32)
    labels = np.clip(np.round(x[:, 0] + 0.3 * rng.normal(size=len(x)) + 1), 0, 4)
    return baselines.ListArrays(
        query_ids=np.asarray([f"q{i}" for i in range(lists)], dtype=object),
        groups=groups.astype(np.int64),
        features=x,
        labels=labels,
        feature_names=("a", "b", "c", "d"),
    )


def test_cv_tuned_lightgbm_picks_a_grid_configuration_and_is_scored_by_the_pipeline_metric():
    pytest.importorskip("lightgbm")
    train, test = _synthetic(60, 1), _synthetic(30, 2)
    ranker, search = baselines.lightgbm_cv(train, seed=0, folds=2, trials=2, max_trees=60)
    assert len(search["trials"]) == 2
    best = search["best"]
    assert best in search["trials"] and all(best[k] in v for k, v in baselines.CV_GRID.items())
    assert 1 <= best["n_estimators"] <= 60 and ranker.n_estimators == best["n_estimators"]
    scores = ranker.predict(test.features)
    summary = baselines.score_table(test, {"cv": scores}).summary("cv")
    assert summary["metrics"]["ndcg_10"] == pytest.approx(mean_ndcg(test.per_list(scores), 10))
    assert summary["metrics"]["ndcg_10"] > 0.8  # the labels follow feature a: the ranker learned it
    # take() keeps each list's rows together, in the order asked for.
    part = test.take(np.asarray([2, 0]))
    assert part.groups.tolist() == [test.groups[2], test.groups[0]]
    np.testing.assert_array_equal(part.labels[: test.groups[2]], test.labels[test.offsets[2] : test.offsets[3]])
    assert dataclasses.replace(part).lists == 2
