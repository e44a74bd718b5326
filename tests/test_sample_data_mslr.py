"""``ltr sample-data --shape mslr``: LETOR files shaped like MSLR-WEB10K that the pipeline reads as they are."""

from __future__ import annotations

import csv
import shutil

import numpy as np

from components.elwc_example_gen.formats import FormatOptions
from modules.features import Role, load_feature_set
from modules.ranking_metrics import mean_ndcg, random_ndcg
from pipeline.cli import main
from pipeline.config import load_config
from tests.helpers import read_lists, run_example_gen


def test_mslr_shaped_data_runs_through_the_example_gen_with_its_own_schema_and_config(tmp_path):
    out = tmp_path / "mslr"
    assert main(["sample-data", "--shape", "mslr", "--out", str(out), "--queries", "30"]) == 0
    lines = [line for path in sorted((out / "span-1").glob("*.txt")) for line in path.read_text().splitlines()]
    tokens = [line.split("#")[0].split() for line in lines]
    assert {int(t[0]) for t in tokens} == {0, 1, 2, 3, 4}
    assert all(t[1].startswith("qid:") for t in tokens)
    indices = {int(tok.split(":")[0]) for t in tokens for tok in t[2:]}
    assert indices == set(range(1, 137))  # 136 features
    zeros = sum(tok.endswith(":0") for t in tokens for tok in t[2:]) / sum(len(t) - 2 for t in tokens)
    assert zeros > 0.2  # sparse-ish, as MSLR
    per_query = {}
    for t in tokens:
        per_query[t[1]] = per_query.get(t[1], 0) + 1
    assert len(per_query) == 30 and 60 < np.mean(list(per_query.values())) < 200

    feature_set = load_feature_set(out / "schema.pbtxt")
    assert len(feature_set.document) == 136 and feature_set.single(Role.DOC_ID) is not None
    config = load_config(out / "config.yaml")
    assert config.examples.format == "letor" and config.examples.input_pattern == "span-{SPAN}/*.txt"
    assert config.schema_path == str(out / "schema.pbtxt")

    # The hidden relevance (oracle) is learnable: it ranks the noisy labels far better than chance.
    oracle: dict[str, tuple[list, list]] = {}
    with open(out / "oracle" / "span-1.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            relevance, labels = oracle.setdefault(row["query_id"], ([], []))
            relevance.append(float(row["relevance"]))
            labels.append(int(row["label"]))
    assert sum(len(v[1]) for v in oracle.values()) == len(lines)
    lists = [(np.asarray(labels), np.asarray(relevance)) for relevance, labels in oracle.values()]
    assert mean_ndcg(lists, 10) > random_ndcg([labels for labels, _ in lists], 10) + 0.2

    (tmp_path / "data").mkdir()
    for path in (out / "span-1").glob("*.txt"):
        shutil.copy(path, tmp_path / "data")
    examples = run_example_gen(
        tmp_path,
        {"all": "*.txt"},
        max_list_size=200,
        options=FormatOptions(format="letor"),
        max_bad=0.0,
        schema=out / "schema.pbtxt",
    )
    written = read_lists(examples.uri, "train") + read_lists(examples.uri, "eval")
    assert len(written) == 30
    assert sum(len(elwc.examples) for elwc in written) == min(len(lines), sum(min(n, 200) for n in per_query.values()))
    assert len(written[0].examples[0].features.feature) >= 130  # doc id, label and the features present
