import csv

import numpy as np

from modules.ranking_metrics import mean_ndcg, random_ndcg
from pipeline.sample_data import COLUMNS, SampleSpec, read_oracle, write_sample_data

SPEC = SampleSpec(spans=2, queries=60, seed=3)


def _rows(root, span):
    with open(root / f"span-{span}" / "logs.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_generator_is_deterministic(tmp_path):
    write_sample_data(tmp_path / "a", SPEC)
    write_sample_data(tmp_path / "b", SPEC)
    for span in (1, 2):
        assert (tmp_path / "a" / f"span-{span}" / "logs.csv").read_bytes() == (
            tmp_path / "b" / f"span-{span}" / "logs.csv"
        ).read_bytes()
    assert _rows(tmp_path / "a", 1) != _rows(tmp_path / "a", 2)


def test_logs_have_the_promised_shape(tmp_path):
    total = write_sample_data(tmp_path, SPEC)
    rows = _rows(tmp_path, 1) + _rows(tmp_path, 2)
    assert len(rows) == total
    assert tuple(rows[0]) == COLUMNS
    sizes = {}
    for row in rows:
        sizes[row["query_id"]] = sizes.get(row["query_id"], 0) + 1
    assert len(sizes) == 2 * SPEC.queries
    assert min(sizes.values()) >= SPEC.min_docs and max(sizes.values()) <= SPEC.max_docs
    assert len(set(sizes.values())) > 5  # variable list lengths
    assert any(row["rating"] == "" for row in rows) and any(row["num_reviews"] == "" for row in rows)
    prices = [float(row["price"]) for row in rows]
    assert max(prices) / max(min(prices), 0.01) > 1000  # mixed scales: log1p matters
    assert {int(row["label"]) for row in rows} == {0, 1, 2, 3, 4}
    # A context feature is missing for whole lists, never for some rows of a list.
    tenure = {}
    for row in rows:
        tenure.setdefault(row["query_id"], set()).add(row["user_tenure_days"])
    assert all(len(values) == 1 for values in tenure.values())


def test_oracle_relevance_ranks_far_better_than_random(tmp_path):
    write_sample_data(tmp_path, SPEC)
    oracle = read_oracle(tmp_path, 1)
    lists = [(np.array(labels), np.array(relevance)) for relevance, labels in oracle.values()]
    assert mean_ndcg(lists) > random_ndcg([labels for labels, _ in lists]) + 0.3
