"""Trainer benchmark: this project's run_fn path vs. TF-Ranking's own SimplePipeline.

Same data (the sample logs through this pipeline's ExampleGen), same scorer
(DNNScorer), loss, optimizer, learning rate, batch size, list size, steps and
steps_per_execution. Reports training throughput after warm-up (lists/s and
real documents/s, timed by the same Keras callback in both) and NDCG@10 on the
eval split.

    PYTHONPATH=. python benchmarks/trainer.py [--queries 400] [--steps 300] [--home DIR]
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_ranking as tfr  # noqa: E402
from tensorflow_serving.apis import input_pb2  # noqa: E402

from modules.features import MASK_KEY, Dtype, Transform, load_feature_set  # noqa: E402
from modules.training import hparams  # noqa: E402
from modules.training.inputs import count_records  # noqa: E402
from modules.training.model import make_scorer  # noqa: E402
from modules.training.trainer import TrainJob, TrainThroughput, train_and_export  # noqa: E402
from modules.transform.preprocessing import signed_log1p  # noqa: E402
from pipeline.transform_run import run_until_transform  # noqa: E402

HP = dict(scorer="dnn", loss="softmax_loss", learning_rate=0.01, hidden_units=64, num_layers=2, dropout=0.1)


def _mean_docs_per_list(files: list[str], list_size: int) -> float:
    counts = [
        min(list_size, len(input_pb2.ExampleListWithContext.FromString(r.numpy()).examples))
        for r in tf.data.TFRecordDataset(files, compression_type="GZIP")
    ]
    return float(np.mean(counts))


def run_ours(run, out: str, steps: int, epochs: int, batch: int, list_size: int, spe: int, seed: int) -> dict:
    job = TrainJob(
        train_files=run.split_files("train"),
        eval_files=run.split_files("eval"),
        transform_graph_path=run.transform_graph_path,
        schema_path=run.schema_path,
        serving_model_dir=os.path.join(out, "serving"),
        model_run_dir=os.path.join(out, "run"),
        train_steps=steps,
        eval_steps=None,
        custom_config={
            "strategy": "none",
            "batch_size": batch,
            "list_size": list_size,
            "epochs": epochs,
            "early_stopping_patience": epochs,  # never stop early: same number of steps as the baseline
            "steps_per_execution": spe,
            "seed": seed,
        },
        hyperparameters=hparams.fixed(**HP).get_config(),
    )
    start = time.perf_counter()
    summary = train_and_export(job)
    return {
        "lists_per_s": summary["train_lists_per_second"],
        "ndcg_10": summary["eval"]["ndcg_10"],
        "wall_s": time.perf_counter() - start,
    }


class _TimedPipeline(tfr.keras.pipeline.SimplePipeline):
    def __init__(self, *args, throughput: TrainThroughput, **kwargs):
        super().__init__(*args, **kwargs)
        self.throughput = throughput
        self.history: tf.keras.callbacks.History | None = None

    def build_callbacks(self):
        self.history = tf.keras.callbacks.History()
        return [*super().build_callbacks(), self.throughput, self.history]


def run_simple_pipeline(
    run, out: str, steps: int, epochs: int, batch: int, list_size: int, spe: int, seed: int
) -> dict:
    """TF-Ranking's SimplePipeline (seed 000's example) on the same ELWC files."""
    tf.keras.utils.set_random_seed(seed)
    feature_set = load_feature_set(run.schema_path)

    def spec(feature):
        dtype = tf.int64 if feature.dtype == Dtype.INT else tf.float32
        default = int(feature.default) if feature.dtype == Dtype.INT else float(feature.default)
        return tf.io.FixedLenFeature(shape=(1,), dtype=dtype, default_value=default)

    context_spec = {f.name: spec(f) for f in feature_set.context}
    example_spec = {f.name: spec(f) for f in feature_set.document}
    label = feature_set.label
    label_dtype = tf.int64 if label.dtype == Dtype.INT else tf.float32
    label_spec = (label.name, tf.io.FixedLenFeature(shape=(1,), dtype=label_dtype, default_value=-1))

    def transform(feature):
        if feature.transform == Transform.LOG1P:
            return lambda x: signed_log1p(tf.cast(x, tf.float32))
        return lambda x: tf.cast(x, tf.float32)

    preprocessor = {f.name: transform(f) for f in (*feature_set.context, *feature_set.document)}
    model_builder = tfr.keras.model.ModelBuilder(
        input_creator=tfr.keras.model.FeatureSpecInputCreator(context_spec, example_spec),
        preprocessor=tfr.keras.model.PreprocessorWithSpec(preprocessor),
        scorer=make_scorer(hparams.fixed(**HP)),
        mask_feature_name=MASK_KEY,
        name="simple_pipeline_model",
    )
    eval_files = run.split_files("eval")
    dataset_builder = tfr.keras.pipeline.SimpleDatasetBuilder(
        context_feature_spec=context_spec,
        example_feature_spec=example_spec,
        mask_feature_name=MASK_KEY,
        label_spec=label_spec,
        hparams=tfr.keras.pipeline.DatasetHparams(
            train_input_pattern=run.split_files("train")[0],
            valid_input_pattern=eval_files[0],
            train_batch_size=batch,
            valid_batch_size=batch,
            list_size=list_size,
            valid_list_size=list_size,
            dataset_reader=functools.partial(tf.data.TFRecordDataset, compression_type="GZIP"),
        ),
    )
    throughput = TrainThroughput(batch)
    pipeline = _TimedPipeline(
        model_builder=model_builder,
        dataset_builder=dataset_builder,
        hparams=tfr.keras.pipeline.PipelineHparams(
            model_dir=out,
            num_epochs=epochs,
            steps_per_epoch=steps // epochs,
            validation_steps=math.ceil(count_records(eval_files) / batch),
            learning_rate=HP["learning_rate"],
            loss=HP["loss"],
            optimizer="adam",
            steps_per_execution=spe,
            strategy="MirroredStrategy",
        ),
        throughput=throughput,
    )
    start = time.perf_counter()
    pipeline.train_and_validate(verbose=2)
    history = pipeline.history.history
    return {
        "lists_per_s": throughput.lists_per_second,
        "ndcg_10": float(history["val_metric/ndcg_10"][-1]),
        "best_ndcg_10": float(max(history["val_metric/ndcg_10"])),
        "wall_s": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--list-size", type=int, default=32)
    parser.add_argument("--steps-per-execution", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3, help="repeat both trainers with seeds 0..N-1; report means")
    parser.add_argument("--home", default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    home = args.home or tempfile.mkdtemp(prefix="ltr-bench-trainer-")
    run = run_until_transform(os.path.join(home, "transform"), queries=args.queries, spans=1)
    common = (args.steps, args.epochs, args.batch_size, args.list_size, args.steps_per_execution)
    results: dict[str, list[dict]] = {"baseline": [], "ours": []}
    for seed in range(args.seeds):  # Alternate, so machine load drifts hit both alike.
        results["baseline"].append(
            run_simple_pipeline(run, os.path.join(home, f"simple_pipeline-{seed}"), *common, seed)
        )
        results["ours"].append(run_ours(run, os.path.join(home, f"ours-{seed}"), *common, seed))

    def mean(name: str, key: str) -> float:
        return float(np.mean([r[key] for r in results[name]]))

    baseline = {k: mean("baseline", k) for k in ("lists_per_s", "ndcg_10", "best_ndcg_10", "wall_s")}
    ours = {k: mean("ours", k) for k in ("lists_per_s", "ndcg_10", "wall_s")}
    per_seed = [
        (round(b["ndcg_10"], 4), round(o["ndcg_10"], 4))
        for b, o in zip(results["baseline"], results["ours"], strict=True)
    ]
    docs = _mean_docs_per_list(run.split_files("train"), args.list_size)

    print()
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"TF {tf.__version__}, TF-Ranking {tfr.__version__}"
    )
    print(
        f"data: sample logs, {args.queries} queries, {count_records(run.split_files('train'))} train / "
        f"{count_records(run.split_files('eval'))} eval lists, {docs:.1f} documents per list (<= list_size); "
        f"{args.steps} steps x {args.batch_size} lists, steps_per_execution {args.steps_per_execution}; "
        f"{HP['scorer']} scorer, {HP['loss']}; means over seeds 0..{args.seeds - 1}"
    )
    print()
    print("| trainer | lists/s | documents/s | NDCG@10 (eval) | wall s |")
    print("|---|---:|---:|---:|---:|")
    for name, result in (("tfr.keras.pipeline.SimplePipeline", baseline), ("this project's run_fn", ours)):
        print(
            f"| {name} | {result['lists_per_s']:,.0f} | {result['lists_per_s'] * docs:,.0f} | "
            f"{result['ndcg_10']:.4f} | {result['wall_s']:.1f} |"
        )
    print(
        f"| ratio (ours / SimplePipeline) | {ours['lists_per_s'] / baseline['lists_per_s']:.2f} | "
        f"{ours['lists_per_s'] / baseline['lists_per_s']:.2f} | {ours['ndcg_10'] - baseline['ndcg_10']:+.4f} (diff) | |"
    )
    print(
        f"\nper seed NDCG@10 (SimplePipeline, ours): {per_seed}; SimplePipeline's best-epoch NDCG@10 "
        f"{baseline['best_ndcg_10']:.4f} (it exports the last epoch; ours restores the best epoch's weights)."
    )


if __name__ == "__main__":
    main()
