"""Feature-path benchmark: the cost of wide feature sets, vectorized vs per-feature.

Generates LETOR-shaped ELWC in this script (``--features`` numeric document
features, 10 % missing, ``--lists`` lists of ``--docs`` documents), attaches
the DataView decoder as ElwcExampleGen does, then per feature path:

- Transform: TFX's Transform executor with the pipeline's own exec properties;
- tuner trial: ``tuner_fn``'s hypermodel built and fitted until the end of its
  first training step (what a KerasTuner trial pays before it trains);
- export: ``run_fn`` (a few steps), timing its ``export_serving_model`` call;
- load: ``tf.saved_model.load`` of the exported model in a fresh process that
  imports neither this project nor TF-Ranking / tf.Transform.

The per-feature baseline is this project's ``modules/`` at ``--baseline`` (a git
revision, default the last commit before the vectorized path), extracted with
``git archive`` and run in its own process, on the same data, in the same run.

    PYTHONPATH=. python benchmarks/features.py [--features 300 136] [--lists 100] [--docs 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "383ed8d"  # modules/ before the vectorized feature path
STAGES = ("transform_s", "trial_first_step_s", "export_s", "load_s")


def write_data(home: Path, features: int, lists: int, docs: int, seed: int = 0) -> Path:
    """ELWC GZIP files (train / eval) and a schema with ``features`` float document features."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import input_pb2

    names = [f"f{i}" for i in range(1, features + 1)]
    schema = [
        'feature { name: "query_id" type: BYTES annotation { tag: "role:query_id" } }',
        'feature { name: "label" type: INT int_domain { min: 0 max: 4 } annotation { tag: "role:label" } }',
        'feature { name: "q_len" type: INT annotation { tag: "role:context" tag: "default:1" } }',
    ] + [f'feature {{ name: "{n}" type: FLOAT annotation {{ tag: "role:document" tag: "default:0" }} }}' for n in names]
    (home / "schema").mkdir(parents=True, exist_ok=True)
    (home / "schema" / "schema.pbtxt").write_text("\n".join(schema) + "\n")
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=features)
    for split, count in (("train", lists), ("eval", max(4, lists // 4))):
        folder = home / "examples" / f"Split-{split}"
        folder.mkdir(parents=True, exist_ok=True)
        with tf.io.TFRecordWriter(str(folder / "data.gz"), options="GZIP") as writer:
            for q in range(count):
                elwc = input_pb2.ExampleListWithContext()
                elwc.context.features.feature["query_id"].bytes_list.value.append(f"{split}-{q}".encode())
                elwc.context.features.feature["q_len"].int64_list.value.append(int(rng.integers(1, 9)))
                values = rng.lognormal(0, 1, size=(docs, features)).astype(np.float32)
                present = rng.random((docs, features)) > 0.1
                relevance = np.log1p(values) @ weights
                labels = np.digitize(relevance, np.quantile(relevance, [0.5, 0.75, 0.9, 0.97]))
                for d in range(docs):
                    example = elwc.examples.add().features.feature
                    example["label"].int64_list.value.append(int(labels[d]))
                    for j in np.flatnonzero(present[d]):
                        example[names[j]].float_list.value.append(float(values[d, j]))
                writer.write(elwc.SerializeToString())
    return home


def _fn_args(home: Path, transform_graph: str, out: Path, train_steps: int, custom_config: dict):
    from tfx.components.trainer.fn_args_utils import FnArgs

    return FnArgs(
        train_files=[str(home / "examples" / "Split-train" / "*")],
        eval_files=[str(home / "examples" / "Split-eval" / "*")],
        transform_graph_path=transform_graph,
        transform_output=transform_graph,
        schema_path=str(home / "schema" / "schema.pbtxt"),
        serving_model_dir=str(out / "serving_model"),
        model_run_dir=str(out / "model_run"),
        working_dir=str(out / "tuner"),
        train_steps=train_steps,
        eval_steps=None,
        custom_config=custom_config,
        hyperparameters=None,
    )


def worker(home: Path, out: Path, paths: dict[str, str]) -> dict[str, float]:
    """One feature path (the ``modules`` package first on sys.path): Transform, trial, export."""
    import importlib

    import tensorflow as tf
    from tfx.components.experimental.data_view import constants as data_view_constants
    from tfx.components.transform import executor as transform_executor
    from tfx.components.util import examples_utils
    from tfx.proto import example_gen_pb2
    from tfx.types import artifact_utils, standard_artifacts
    from tfx_bsl.coders import tf_graph_record_decoder

    from modules.features import load_feature_set

    decoder_module = importlib.import_module(paths["decoder"])
    feature_set = load_feature_set(home / "schema" / "schema.pbtxt")
    results: dict[str, float] = {}

    # ElwcExampleGen's output: the ELWC splits plus the DataView decoder.
    examples = standard_artifacts.Examples()
    examples.uri = str(home / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_PROTO)
    examples_utils.set_file_format(examples, "tfrecords_gzip")
    data_view = out / "data_view"
    tf_graph_record_decoder.save_decoder(decoder_module.ElwcDecoder(feature_set), str(data_view))
    examples.set_string_custom_property(data_view_constants.DATA_VIEW_URI_PROPERTY_KEY, str(data_view))
    examples.set_string_custom_property(data_view_constants.DATA_VIEW_CREATE_TIME_KEY, "0")
    schema = standard_artifacts.Schema()
    schema.uri = str(home / "schema")

    # Transform with the pipeline's own exec properties (its statistics settings included).
    component = json.loads((out.parent / "transform_component.json").read_text())
    exec_properties = dict(component["exec_properties"])
    exec_properties["preprocessing_fn"] = paths["preprocessing_fn"]
    preprocessing = importlib.import_module(paths["preprocessing_fn"].rsplit(".", 1)[0])
    custom_config = {preprocessing.SCHEMA_CONFIG_KEY: (home / "schema" / "schema.pbtxt").read_text()}
    exec_properties["custom_config"] = json.dumps(custom_config)
    outputs = {}
    for key, type_name in component["outputs"].items():
        artifact = getattr(standard_artifacts, type_name)()
        artifact.uri = str(out / "transform" / key)
        os.makedirs(artifact.uri, exist_ok=True)
        outputs[key] = [artifact]
    start = time.perf_counter()
    context = transform_executor.Executor.Context(beam_pipeline_args=component["beam_args"], tmp_dir=str(out / "tmp"))
    transform_executor.Executor(context).Do({"examples": [examples], "schema": [schema]}, outputs, exec_properties)
    results["transform_s"] = time.perf_counter() - start
    transform_graph = outputs["transform_graph"][0].uri

    training = {"strategy": "none", "batch_size": 16, "list_size": 32, "epochs": 1, "steps_per_execution": 1}

    # A tuner trial up to the end of its first training step.
    tuner_module = importlib.import_module(paths["tuner_fn"].rsplit(".", 1)[0])
    fn_args = _fn_args(home, transform_graph, out, 1, {**training, "tuner": {"max_trials": 1, "epochs": 1}})
    start = time.perf_counter()
    result = tuner_module.tuner_fn(fn_args)
    first_step: list[float] = []

    class FirstStep(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if not first_step:
                first_step.append(time.perf_counter())

    hp = result.tuner.oracle.get_space()
    model = result.tuner.hypermodel.build(hp)
    model.fit(result.fit_kwargs["x"], steps_per_epoch=1, epochs=1, callbacks=[FirstStep()], verbose=0)
    results["trial_first_step_s"] = first_step[0] - start

    # run_fn: train a few steps, time its export.
    trainer_module = importlib.import_module(paths["run_fn"].rsplit(".", 1)[0])
    export = trainer_module.export_serving_model

    def timed_export(*args, **kwargs):
        start = time.perf_counter()
        export(*args, **kwargs)
        results["export_s"] = time.perf_counter() - start

    trainer_module.export_serving_model = timed_export
    trainer_module.run_fn(_fn_args(home, transform_graph, out, 10, training))
    return results


def load_in_fresh_process(model_dir: str) -> float:
    """Seconds ``tf.saved_model.load`` takes in a process that imports no project code."""
    code = (
        "import os, sys, time\n"
        "os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
        "import tensorflow as tf\n"
        "start = time.perf_counter(); tf.saved_model.load(sys.argv[1]); print(time.perf_counter() - start)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", code, model_dir], capture_output=True, text=True, check=True, env=env, cwd="/"
    )
    return float(done.stdout.strip().splitlines()[-1])


PATHS = {
    "vectorized": {
        "decoder": "modules.transform.decoder",
        "preprocessing_fn": "modules.transform.preprocessing.preprocessing_fn",
        "tuner_fn": "modules.training.tuner.tuner_fn",
        "run_fn": "modules.training.trainer.run_fn",
    },
    "per-feature": {
        "decoder": "modules.elwc_decoder",
        "preprocessing_fn": "modules.preprocessing.preprocessing_fn",
        "tuner_fn": "modules.tuner.tuner_fn",
        "run_fn": "modules.trainer.run_fn",
    },
}


def write_transform_component(path: Path) -> None:
    """The pipeline's Transform exec properties and outputs (read with this checkout's code)."""
    from pipeline.config import apply_overrides, load_config
    from pipeline.pipeline import create_components

    config = apply_overrides(load_config(), {"tuner.enabled": False})
    component = next(c for c in create_components(config) if c.id == "Transform")
    path.write_text(
        json.dumps(
            {
                "exec_properties": {k: v for k, v in component.exec_properties.items() if v is not None},
                "outputs": {key: channel.type.__name__ for key, channel in component.outputs.items()},
                "beam_args": list(config.beam_args),
            }
        )
    )


def run_path(name: str, home: Path, out: Path, modules_root: Path) -> dict[str, float]:
    """Runs ``worker`` in its own process with ``modules_root`` first on the path."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": f"{modules_root}:{ROOT}", "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = [sys.executable, __file__, "--worker", name, "--home", str(home), "--out", str(out)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, cwd=str(modules_root))
    if done.returncode:
        sys.stderr.write(done.stderr[-4000:])
        raise RuntimeError(f"{name} path failed (exit {done.returncode})")
    results = json.loads((out / "results.json").read_text())
    results["load_s"] = load_in_fresh_process(str(out / "serving_model"))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=int, nargs="+", default=[300, 136])
    parser.add_argument("--lists", type=int, default=100)
    parser.add_argument("--docs", type=int, default=30)
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the per-feature modules/ ('' = skip)")
    parser.add_argument("--home", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        out = Path(args.out)
        results = worker(Path(args.home), out, PATHS[args.worker])
        (out / "results.json").write_text(json.dumps(results))
        return

    home = Path(args.home or tempfile.mkdtemp(prefix="ltr-bench-features-"))
    home.mkdir(parents=True, exist_ok=True)
    baseline_root = None
    if args.baseline:
        baseline_root = home / "baseline"
        shutil.rmtree(baseline_root, ignore_errors=True)
        baseline_root.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", args.baseline, "modules"], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(baseline_root)], input=archive.stdout, check=True)

    write_transform_component(home / "transform_component.json")
    rows = []
    for features in args.features:
        data = write_data(home / f"data-{features}", features, args.lists, args.docs)
        paths = [("vectorized", ROOT)] + ([("per-feature", baseline_root)] if baseline_root else [])
        measured = {name: run_path(name, data, home / f"out-{features}-{name}", root) for name, root in paths}
        rows.append((features, measured))

    print()
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(
        f"data: {args.lists} train lists x {args.docs} documents ({args.lists * args.docs} rows), "
        f"N float document features + 1 int context feature, 10 % missing; baseline modules/ at {args.baseline!r}"
    )
    print()
    print("| features | path | Transform s | trial: to first step s | export s | load s (fresh process) |")
    print("|---:|---|---:|---:|---:|---:|")
    for features, measured in rows:
        for name, result in measured.items():
            print(f"| {features} | {name} | " + " | ".join(f"{result[k]:.1f}" for k in STAGES) + " |")
        if "per-feature" in measured:
            ratios = [measured["per-feature"][k] / measured["vectorized"][k] for k in STAGES]
            print(
                f"| {features} | speed-up (per-feature / vectorized) | "
                + " | ".join(f"{r:.1f}x" for r in ratios)
                + " |"
            )


if __name__ == "__main__":
    main()
