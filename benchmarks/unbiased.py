"""Position-bias correction on simulated click logs: NDCG@10 against the true relevance.

For each seed: ``pipeline.click_sample`` simulates one span of click logs
(position-based click model, ``(1/position)^eta`` examination, a noisy
production ranker); the flat labelled form (label = the events' grade:
purchase 2, add_to_cart 1, click 1) goes through the pipeline's ImportSchemaGen,
ElwcExampleGen and Transform; the same ELWC lists are relabelled with the true
relevance grade for the ceiling. The production ``run_fn`` then trains four
models with the same hyperparameters and steps:

  (a) naive   clicks as labels          (training.position_bias: none)
  (b) ipw     clicks, propensity-weighted (propensities fitted on the train split
              by the PropensityEstimator's own function, regression-EM)
  (c) tower   clicks, bias tower         (training.position_bias: bias_tower)
  (d) oracle  the true relevance grades 0-4 as labels (the ceiling)

Each exported SavedModel scores the held-out test split (``serving_default``), and
NDCG@10 (``modules.ranking_metrics``) is computed against the true relevance.
"Recovered" is ``(x - naive) / (oracle - naive)``;
the target is >= 0.5 for ipw and tower.

    PYTHONPATH=. python benchmarks/unbiased.py [--seeds 1 2 3] [--queries 1500] [--train-steps 400]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import logging as absl_logging  # noqa: E402
from tensorflow_serving.apis import input_pb2  # noqa: E402

from components.propensity_estimator.executor import estimate_from_files, write_propensities  # noqa: E402
from modules.features import load_feature_set  # noqa: E402
from modules.propensity import Propensities  # noqa: E402
from modules.ranking_metrics import mean_ndcg  # noqa: E402
from modules.training import hparams  # noqa: E402
from modules.training.position_bias import PROPENSITIES_URI_KEY  # noqa: E402
from pipeline.click_sample import ClickSpec, examination, schema_text, write_flat_span  # noqa: E402

VARIANTS = ("naive", "ipw", "bias_tower", "oracle")


def _relabel(files: list[str], out_dir: Path, grades: dict[tuple[str, str], int]) -> list[str]:
    """The same ELWC lists with the true relevance grade as the label."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in files:
        target = str(out_dir / os.path.basename(path))
        with tf.io.TFRecordWriter(target, options="GZIP") as writer:
            for record in tf.data.TFRecordDataset([path], compression_type="GZIP"):
                elwc = input_pb2.ExampleListWithContext.FromString(record.numpy())
                query = elwc.context.features.feature["query_id"].bytes_list.value[0].decode()
                for example in elwc.examples:
                    doc = example.features.feature["doc_id"].bytes_list.value[0].decode()
                    label = example.features.feature["label"].int64_list.value
                    label[:] = [grades[(query, doc)]]
                writer.write(elwc.SerializeToString(deterministic=True))
        written.append(target)
    return written


def _train(run, train_files, eval_files, out: Path, steps: int, custom: dict) -> str:
    from tfx.components.trainer.fn_args_utils import FnArgs

    from modules.training.trainer import run_fn

    with contextlib.redirect_stdout(sys.stderr):  # Keras' progress lines: keep stdout for the table
        _run_fn(run_fn, FnArgs, run, train_files, eval_files, out, steps, custom)
    return str(out / "serving")


def _run_fn(run_fn, FnArgs, run, train_files, eval_files, out: Path, steps: int, custom: dict) -> None:
    run_fn(
        FnArgs(
            train_files=train_files,
            eval_files=eval_files,
            transform_graph_path=run.transform_graph_path,
            schema_path=run.schema_path,
            serving_model_dir=str(out / "serving"),
            model_run_dir=str(out / "model_run"),
            train_steps=steps,
            eval_steps=None,
            custom_config={"strategy": "none", "epochs": 8, "early_stopping_patience": 3, "seed": 0, **custom},
            hyperparameters=hparams.fixed().get_config(),
        )
    )


def _test_ndcg(serving_dir: str, files: list[str], grades: dict[tuple[str, str], int]) -> float:
    serve = tf.saved_model.load(serving_dir).signatures["serving_default"]
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    lists = []
    for start in range(0, len(records), 256):
        batch = records[start : start + 256]
        scores = serve(examples=tf.constant(batch))["scores"].numpy()
        for record, row in zip(batch, scores, strict=True):
            elwc = input_pb2.ExampleListWithContext.FromString(record)
            query = elwc.context.features.feature["query_id"].bytes_list.value[0].decode()
            docs = [e.features.feature["doc_id"].bytes_list.value[0].decode() for e in elwc.examples]
            lists.append((np.array([grades[(query, d)] for d in docs]), row[: len(docs)]))
    return mean_ndcg(lists)


def run_seed(seed: int, spec: ClickSpec, steps: int, work: Path) -> tuple[dict[str, float], Propensities]:
    from pipeline.config import apply_overrides, load_config
    from pipeline.transform_run import run_transform

    home = work / f"seed-{seed}"
    data = home / "data"
    sim = write_flat_span(data, 1, dataclasses.replace(spec, seed=seed), label="clicks")
    (home / "schema.pbtxt").write_text(schema_text())
    grades = {
        (q, d): int(g) for q, d, g in zip(sim.columns["request_id"], sim.columns["item_id"], sim.grade, strict=True)
    }
    config = apply_overrides(
        load_config(),
        {
            "pipeline_name": "unbiased-bench",
            "data_root": str(data),
            "pipeline_root": str(home / "pipeline"),
            "metadata_path": str(home / "metadata.sqlite"),
            "registry_root": str(home / "registry"),
            "schema_path": str(home / "schema.pbtxt"),
        },
    )
    run = run_transform(config)
    clicks = {split: run.split_files(split) for split in ("train", "eval", "test")}
    truth = {split: _relabel(files, home / "oracle" / split, grades) for split, files in clicks.items()}
    propensities = estimate_from_files(clicks["train"], load_feature_set(run.schema_path))
    write_propensities(propensities, str(home / "propensities"))

    settings = {
        "naive": (clicks, {"position_bias": "none"}),
        "ipw": (clicks, {"position_bias": "ipw", PROPENSITIES_URI_KEY: str(home / "propensities")}),
        "bias_tower": (clicks, {"position_bias": "bias_tower"}),
        "oracle": (truth, {"position_bias": "none"}),
    }
    result = {}
    for variant, (files, custom) in settings.items():
        serving = _train(run, files["train"], files["eval"], home / variant, steps, custom)
        result[variant] = _test_ndcg(serving, clicks["test"], grades)
        print(f"  seed {seed} {variant}: NDCG@10 vs true relevance {result[variant]:.4f}", file=sys.stderr, flush=True)
    return result, propensities


def _machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--queries", type=int, default=1500, help="requests in the simulated span")
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--eta", type=float, default=1.0)
    parser.add_argument("--work", help="working folder (default: a temporary one, deleted)")
    args = parser.parse_args(argv)
    absl_logging.set_verbosity(absl_logging.WARNING)
    spec = ClickSpec(spans=1, queries=args.queries, eta=args.eta)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="ltr-unbiased-"))
    started = time.perf_counter()
    results, curves = [], []
    try:
        for seed in args.seeds:
            result, propensities = run_seed(seed, spec, args.train_steps, work)
            results.append(result)
            curves.append(propensities.relative)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - started

    print(f"command: PYTHONPATH=. python benchmarks/unbiased.py {' '.join(argv or sys.argv[1:])}".rstrip())
    print(f"machine: {_machine()}; TensorFlow {tf.__version__}; {seconds:.0f} s")
    print(
        f"data: {args.queries} requests x 10-30 items per seed (60/20/20 % train/eval/test lists), examination "
        f"(1/position)^{args.eta}, click noise eps+ {spec.eps_plus} eps- {spec.eps_minus}; "
        f"{args.train_steps} training steps, default hyperparameters"
    )
    print()
    print("| seed | (a) naive clicks | (b) ipw | (c) bias_tower | (d) true labels | ipw recovered | tower recovered |")
    print("|---:|---:|---:|---:|---:|---:|---:|")

    def recovered(r, variant):
        gap = r["oracle"] - r["naive"]
        return (r[variant] - r["naive"]) / gap if gap > 0 else float("nan")

    for seed, r in zip(args.seeds, results, strict=True):
        print(
            f"| {seed} | {r['naive']:.4f} | {r['ipw']:.4f} | {r['bias_tower']:.4f} | {r['oracle']:.4f} "
            f"| {recovered(r, 'ipw'):.2f} | {recovered(r, 'bias_tower'):.2f} |"
        )
    mean = {v: float(np.mean([r[v] for r in results])) for v in VARIANTS}
    print(
        f"| mean | {mean['naive']:.4f} | {mean['ipw']:.4f} | {mean['bias_tower']:.4f} | {mean['oracle']:.4f} "
        f"| {recovered(mean, 'ipw'):.2f} | {recovered(mean, 'bias_tower'):.2f} |"
    )
    print()
    shown = min(10, *(len(c) for c in curves))
    true = examination(np.arange(1, shown + 1), args.eta)
    print("| position | " + " | ".join(str(k) for k in range(1, shown + 1)) + " |")
    print("|---|" + "---:|" * shown)
    print("| true examination (1/k)^eta | " + " | ".join(f"{v:.3f}" for v in true) + " |")
    for seed, curve in zip(args.seeds, curves, strict=True):
        print(f"| estimated, seed {seed} | " + " | ".join(f"{v:.3f}" for v in curve[:shown]) + " |")
    print(json.dumps({"results": results, "mean": mean}), file=sys.stderr)


if __name__ == "__main__":
    main()
