"""Reproducibility: same config and data twice vs different ``training.seed``, on MSLR-shaped data.

    PYTHONPATH=. python benchmarks/seed_spread.py [--queries 500] [--seeds 0,1,2] [--repeat 0] [--work DIR]

Writes ``ltr sample-data --shape mslr`` data once, then runs ``ltr run`` (default config,
each run in its own pipeline root, MLMD and registry: nothing cached between runs) once per
seed in ``--seeds`` and once more for the seed ``--repeat``. Per run it prints the Tuner's
trials (scorer and eval NDCG@10), its selection, the registered model's hyperparameters
and its test NDCG@10 (RankingEvaluator, full lists). Then: the difference between the two
runs of the repeated seed, against the spread (max - min, and standard deviation) of test
NDCG@10 over the different seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.scaling import run_ltr_in  # noqa: E402
from pipeline.sample_data import MslrSpec, write_mslr_data  # noqa: E402


def one_run(base: Path, data: Path, seed: int) -> dict:
    from pipeline.report import latest_run_report

    base.mkdir(parents=True, exist_ok=True)
    run, _ = run_ltr_in(base, data, base / "home", f"for seed {seed}", seed=seed)
    report = latest_run_report(str(base / "home" / "metadata.sqlite"))
    results_uri = report.artifact("TunerResults").uri
    trials = json.loads(Path(results_uri, "tuner_results.json").read_text())
    selection_path = Path(results_uri, "selection.json")
    selection = json.loads(selection_path.read_text()) if selection_path.exists() else {}
    metrics = json.loads(Path(report.artifact("ModelRun").uri, "metrics.json").read_text())
    return {
        "seed": seed,
        "seconds": run["seconds"],
        "trials": sorted((t["trial_id"], t["scorer"], round(t["score"], 4)) for t in trials),
        "selection": selection.get("summary", "-"),
        "hyperparameters": metrics["hyperparameters"],
        "test_ndcg_10": report.evaluation["metrics"]["ndcg_10"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--repeat", type=int, default=0, help="the seed run a second time")
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-seeds-")).resolve()
    data = work / "data"
    write_mslr_data(data, MslrSpec(queries=args.queries))
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = [one_run(work / f"seed-{s}", data, s) for s in seeds]
    runs.append(one_run(work / f"seed-{args.repeat}-again", data, args.repeat))

    print(
        "command: python benchmarks/seed_spread.py "
        f"--queries {args.queries} --seeds {args.seeds} --repeat {args.repeat}"
    )
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end")
    print()
    print("| run | seed | trials (id, scorer, eval NDCG@10) | selection | selected scorer / loss | test NDCG@10 | s |")
    print("|---|---:|---|---|---|---:|---:|")
    for index, run in enumerate(runs):
        hp = run["hyperparameters"]
        trials = "; ".join(f"{i} {s} {v:.4f}" for i, s, v in run["trials"])
        print(
            f"| {index + 1} | {run['seed']} | {trials} | {run['selection']} | {hp['scorer']} / {hp['loss']} | "
            f"{run['test_ndcg_10']:.4f} | {run['seconds']:.0f} |"
        )
    by_seed = [r["test_ndcg_10"] for r in runs[: len(seeds)]]
    first = next(r for r in runs if r["seed"] == args.repeat)
    again = runs[-1]
    print()
    print(
        f"same seed ({args.repeat}) twice: test NDCG@10 {first['test_ndcg_10']:.4f} vs {again['test_ndcg_10']:.4f}, "
        f"|difference| {abs(first['test_ndcg_10'] - again['test_ndcg_10']):.4f}; "
        f"same trials: {first['trials'] == again['trials']}; same hyperparameters: "
        f"{first['hyperparameters'] == again['hyperparameters']}"
    )
    print(
        f"different seeds {seeds}: test NDCG@10 range {max(by_seed) - min(by_seed):.4f}, "
        f"std {np.std(by_seed, ddof=1):.4f}"
    )


if __name__ == "__main__":
    main()
