"""Benchmark: the same `ltr run` with Beam's DirectRunner and with the portable runner.

    PYTHONPATH=. python benchmarks/beam_runners.py [--queries 400] [--train-steps 100] [--workers 2]

Each run is `ltr run` in its own fresh home (same deterministic sample data, same
config, cache empty), timed as a whole; per-component times come from the run's
MLMD executions. The portable run starts Beam's job service and external worker
pool itself (`--beam portable`). Also prints the ServingCheck's latency figures
(p50/p99 per signature and list size) of each run. Prints a table with the command
and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def ltr_run(home: str, runner: str, args: argparse.Namespace) -> tuple[float, int]:
    command = [
        os.path.join(os.path.dirname(sys.executable), "ltr"),
        "run",
        "--data", f"{home}/data",
        "--pipeline-root", f"{home}/pipeline",
        "--metadata-path", f"{home}/metadata.sqlite",
        "--registry-root", f"{home}/registry",
        "--beam", runner,
        "--beam-workers", str(args.workers),
        "--train-steps", str(args.train_steps),
        "--tuner-trials", "1",
        "--tuner-steps", str(args.tuner_steps),
    ]  # fmt: skip
    config = os.path.join(home, "bench.yaml")
    os.makedirs(home, exist_ok=True)
    with open(config, "w") as handle:
        handle.write(f"sample_data: {{spans: 1, queries: {args.queries}}}\n")
    command += ["--config", config]
    start = time.perf_counter()
    with open(os.path.join(home, "run.log"), "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=home)
    return time.perf_counter() - start, done.returncode


def component_seconds(metadata_path: str) -> dict[str, float]:
    from pipeline.report import _node_ids, open_store

    store = open_store(metadata_path)
    nodes = _node_ids(store, "ltr")
    return {
        nodes.get(e.id, str(e.id)): (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000.0
        for e in store.get_executions()
    }


def serving_latency(metadata_path: str) -> tuple[dict[str, float], str]:
    """The ServingCheck's latency figures, and the trained model's hyperparameters (they set its cost)."""
    import json

    from pipeline.report import latest_run_report

    report = latest_run_report(metadata_path)
    props = report.artifact("InfraBlessing").custom_properties
    with open(os.path.join(report.artifact("ModelRun").uri, "metrics.json")) as handle:
        hyperparameters = json.load(handle).get("hyperparameters", {})
    model = ", ".join(f"{k}={hyperparameters[k]}" for k in sorted(hyperparameters))
    return {k: v.double_value for k, v in sorted(props.items()) if k.startswith("latency_ms_")}, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=400, help="sample queries (one span)")
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--tuner-steps", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="portable: SDK worker processes")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-beam-") as tmp:
        for runner in ("direct", "portable"):
            home = os.path.join(tmp, runner)
            seconds, rc = ltr_run(home, runner, args)
            if rc != 0:
                tail = open(os.path.join(home, "run.log")).read()[-3000:]
                raise SystemExit(f"`ltr run --beam {runner}` failed ({rc}):\n{tail}")
            metadata = os.path.join(home, "metadata.sqlite")
            results[runner] = (seconds, component_seconds(metadata), serving_latency(metadata))

    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(
        f"ltr run: 1 span x {args.queries} queries, --train-steps {args.train_steps}, 1 tuner trial x "
        f"{args.tuner_steps} steps; portable: {args.workers} SDK workers\n"
    )
    direct_total = results["direct"][0]
    print(f"{'':22}{'direct (s)':>12}{'portable (s)':>14}{'ratio':>8}")
    print(f"{'whole ltr run':22}{direct_total:>12.1f}{results['portable'][0]:>14.1f}"
          f"{results['portable'][0] / direct_total:>8.2f}")  # fmt: skip
    for node in ("ElwcExampleGen", "Transform", "Tuner", "Trainer", "RankingEvaluator", "ServingCheck"):
        d, p = results["direct"][1].get(node), results["portable"][1].get(node)
        if d and p:
            print(f"{'  ' + node:22}{d:>12.1f}{p:>14.1f}{p / d:>8.2f}")
    print("\nServingCheck latency (ms, one list, 50 calls, fresh TensorFlow-only process):")
    print(f"{'':40}{'direct run':>12}{'portable run':>14}")
    for key, value in results["direct"][2][0].items():
        other = results["portable"][2][0].get(key, float("nan"))
        print(f"{key.removeprefix('latency_ms_'):40}{value:>12.2f}{other:>14.2f}")
    for runner in ("direct", "portable"):
        print(f"model of the {runner} run: {results[runner][2][1]}")


if __name__ == "__main__":
    main()
