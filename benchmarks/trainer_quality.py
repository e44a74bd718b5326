"""Model NDCG@10 vs. the oracle NDCG@10 on the same eval lists, after an ``ltr run``.

The oracle ranks each eval list by the sample generator's hidden (noise-free)
relevance (``<data_root>/oracle/span-N.csv``) and is scored on the same noisy
labels as the model. Reads the latest run recorded in the MLMD database.

    PYTHONPATH=. python benchmarks/trainer_quality.py [--home ltr-home]
"""

from __future__ import annotations

import argparse
import glob
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import input_pb2  # noqa: E402

from modules.ranking_metrics import mean_ndcg  # noqa: E402
from modules.serving import loading  # noqa: E402
from modules.training.config import METRICS_FILE  # noqa: E402
from pipeline.report import latest_run_report  # noqa: E402
from pipeline.sample_data import read_oracle  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", default="ltr-home")
    args = parser.parse_args(argv)
    report = latest_run_report(os.path.join(args.home, "metadata.sqlite"))
    examples = report.artifact("Examples")
    span = examples.custom_properties["span"].int_value
    oracle = read_oracle(os.path.join(args.home, "data"), span)
    files = sorted(glob.glob(os.path.join(examples.uri, "Split-eval", "*.gz")))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    serve = loading.load(os.path.join(report.artifact("Model").uri, "Format-Serving"))
    scores = serve.signatures["serving_default"](examples=tf.constant(records))["scores"].numpy()
    model_lists, oracle_lists = [], []
    for record, row in zip(records, scores, strict=True):
        elwc = input_pb2.ExampleListWithContext.FromString(record)
        query = elwc.context.features.feature["query_id"].bytes_list.value[0].decode()
        labels = np.array([e.features.feature["label"].int64_list.value[0] for e in elwc.examples])
        relevance, oracle_labels = oracle[query]
        if sorted(oracle_labels) != sorted(labels.tolist()):
            raise ValueError(f"query {query}: oracle labels differ from the ELWC labels")
        model_lists.append((labels, row[: len(labels)]))
        oracle_lists.append((np.array(oracle_labels), np.array(relevance)))
    with open(os.path.join(report.artifact("ModelRun").uri, METRICS_FILE)) as handle:
        summary = json.load(handle)
    model_ndcg, oracle_ndcg = mean_ndcg(model_lists), mean_ndcg(oracle_lists)
    print(f"span {span}, {len(records)} eval lists; hyperparameters {summary['hyperparameters']}")
    print("| NDCG@10 on the eval split | value |")
    print("|---|---:|")
    print(f"| model, TF-Ranking metric (Trainer's metrics.json) | {summary['eval']['ndcg_10']:.4f} |")
    print(f"| model, numpy on the exported SavedModel's scores | {model_ndcg:.4f} |")
    print(f"| oracle (hidden relevance order) | {oracle_ndcg:.4f} |")
    print(f"| model / oracle | {model_ndcg / oracle_ndcg:.3f} |")


if __name__ == "__main__":
    main()
