"""Benchmark: ranking quality of the pipeline against LightGBM and TF-Ranking, on the same lists.

    PYTHONPATH=. python benchmarks/quality.py [--queries 2000] [--seeds 0,1,2] [--work DIR] [--json PATH]

On ``ltr sample-data --shape mslr`` data (136 float features, ~120 documents per query,
labels 0-4 in MSLR's proportions), for each seed:

(a) **pipeline**: a full ``ltr run`` with the default config and ``training.seed: <seed>``
    (a subprocess; its own home folder), its candidate model scored on the run's test split;
(b) **LightGBM default**: ``LGBMRanker(random_state=seed)``, every other parameter default;
(c) **LightGBM CV-tuned**: a random search of ``baselines.CV_TRIALS`` configurations from
    ``baselines.CV_GRID`` by grouped ``CV_FOLDS``-fold cross-validation over the training lists
    (queries never split across folds), early stopping choosing the number of trees, refitted
    on all training lists;
(d) **TF-Ranking SimplePipeline**: ``tfr.keras.pipeline.SimplePipeline`` (DNN scorer, softmax
    loss; ``baselines.SIMPLE_PIPELINE``), trained on the run's train records, best epoch by
    NDCG@10 on its eval records, seeded with ``tf.keras.utils.set_random_seed(seed)``.

All four see exactly the same lists: the baselines read the pipeline run's own ElwcExampleGen
output (``Split-train`` / ``Split-eval`` / ``Split-test``), and every run's splits are checked
to be byte-identical. All four are scored by the RankingEvaluator's own per-list table
(``modules.ranking_metrics``: full lists, tie-aware NDCG, lists without a relevant document
left out), and the pipeline's numbers are checked against its RankingEvaluator's
``evaluation.json``. Reported: NDCG@1/5/10 mean, standard deviation (ddof=1), min and max
over seeds; wall seconds; the paired per-list gap pipeline - CV-tuned LightGBM with its
bootstrap 95% interval. The table is printed with the command and machine; a JSON is written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import baselines  # noqa: E402
from scaling import component_seconds, run_ltr_in  # noqa: E402

from modules.features import load_feature_set  # noqa: E402
from pipeline.sample_data import MslrSpec, write_mslr_data  # noqa: E402

RANKERS = {
    "pipeline": "pipeline (ltr run, default config)",
    "lgbm_default": "LightGBM LGBMRanker, default parameters",
    "lgbm_cv": "LightGBM LGBMRanker, CV-tuned",
    "simple_pipeline": "TF-Ranking SimplePipeline (DNN, softmax)",
}
METRICS = ("ndcg_1", "ndcg_5", "ndcg_10")
SPLITS = ("train", "eval", "test")


def split_fingerprint(examples_uri: str) -> dict[str, str]:
    """sha256 of each split's records in reading order: equal fingerprints = the same lists."""
    out = {}
    for split in SPLITS:
        digest = hashlib.sha256()
        for records in baselines.read_records(baselines.split_files(examples_uri, split)):
            for record in records:
                digest.update(len(record).to_bytes(8, "little"))
                digest.update(record)
        out[split] = digest.hexdigest()
    return out


def run_ltr(work: Path, data: Path, seed: int) -> dict:
    """``ltr run`` with the default config and ``training.seed`` in a fresh home; the run's Examples and evaluation."""
    home = work / f"pipeline-seed-{seed}"
    shutil.rmtree(home, ignore_errors=True)  # a fresh run: no cached component, no served version
    home.mkdir(parents=True)
    run, _ = run_ltr_in(home, data, home, f"for seed {seed}", seed=seed)
    from pipeline.report import latest_run_report

    metadata = str(home / "metadata.sqlite")
    report = latest_run_report(metadata)
    examples = [a for a in report.outputs["Examples"] if "bad_rows" in a.custom_properties]  # ElwcExampleGen's
    seconds = component_seconds(metadata)
    return {
        "seconds": run["seconds"],
        "fit_seconds": seconds.get("Tuner", 0.0) + seconds.get("Trainer", 0.0),
        "component_seconds": seconds,
        "examples_uri": examples[-1].uri,
        "evaluation": report.evaluation,
    }


def run_baselines(
    work: Path, uri: str, feature_set, arrays, seed: int, settings: dict, fingerprint: dict, first_search: dict | None
) -> dict:
    """(b)-(d) for one seed: test scores, seconds and the CV search; cached in ``<work>/baselines-seed-N.json``
    for the same splits and settings, so a later run (another pipeline version) reuses them."""
    cache = work / f"baselines-seed-{seed}.json"
    searched = {"cv_grid": baselines.CV_GRID, "max_trees": baselines.MAX_TREES, "early_stop": baselines.EARLY_STOP}
    key = {"splits": fingerprint, "settings": {**settings, **searched, **baselines.SIMPLE_PIPELINE}, "seed": seed}
    key = json.loads(json.dumps(key))  # as it reads back
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached["key"] == key:
            print(f"seed {seed}: baselines reused from {cache} (same splits and settings)", file=sys.stderr)
            return {**cached, "scores": {n: np.asarray(v) for n, v in cached["scores"].items()}, "reused": True}
    train, test = arrays["train"], arrays["test"]
    test_files = baselines.split_files(uri, "test")
    scores, seconds = {}, {}
    model, seconds["lgbm_default"] = baselines.timed(baselines.lightgbm_default, train, seed)
    scores["lgbm_default"] = model.predict(test.features)
    if settings["cv_search"] == "once" and first_search is not None:
        # The first seed's search chose the configuration; this seed refits it with its own random_state.
        search = {**first_search, "refit_only": True}
        model, seconds["lgbm_cv"] = baselines.timed(baselines.lightgbm_refit, train, search["best"], seed)
    else:
        (model, search), seconds["lgbm_cv"] = baselines.timed(
            baselines.lightgbm_cv, train, seed, folds=settings["cv_folds"], trials=settings["cv_trials"]
        )
    scores["lgbm_cv"] = model.predict(test.features)
    model_dir = work / f"simple-pipeline-seed-{seed}"
    shutil.rmtree(model_dir, ignore_errors=True)  # its BackupAndRestore callback would resume an old run
    export, seconds["simple_pipeline"] = baselines.timed(
        baselines.simple_pipeline,
        uri,
        feature_set,
        seed,
        str(model_dir),
        {"num_epochs": settings["simple_epochs"]},
    )
    scores["simple_pipeline"] = baselines.simple_pipeline_scores(export, test_files)
    result = {"key": key, "scores": scores, "seconds": seconds, "lgbm_cv_search": search}
    baselines.dump(str(cache), {**result, "scores": {n: v.tolist() for n, v in scores.items()}})
    return {**result, "reused": False}


def spread(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if array.size > 1 else 0.0,
        "min": float(array.min()),
        "max": float(array.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seeds", default="0,1,2", help="model-training seeds, comma-separated")
    parser.add_argument(
        "--work",
        default=None,
        help="working folder (default: a new temp folder); baselines already computed there for the same "
        "splits and settings are reused, so a second run measures another pipeline version against them",
    )
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "quality.json"), help="where to write the JSON")
    parser.add_argument("--cv-trials", type=int, default=baselines.CV_TRIALS)
    parser.add_argument("--cv-folds", type=int, default=baselines.CV_FOLDS)
    parser.add_argument(
        "--cv-search",
        choices=("per-seed", "once"),
        default="per-seed",
        help="per-seed: each seed runs the whole CV search (its folds, draws, random_state); "
        "once: the first seed's search picks the configuration, each seed refits it with its random_state",
    )
    parser.add_argument("--simple-epochs", type=int, default=baselines.SIMPLE_PIPELINE["num_epochs"])
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = {
        "cv_trials": args.cv_trials,
        "cv_folds": args.cv_folds,
        "cv_search": args.cv_search,
        "simple_epochs": args.simple_epochs,
    }
    from tfx.utils import path_utils

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-quality-")).resolve()
    data = work / "data"
    rows = write_mslr_data(data, MslrSpec(queries=args.queries))
    feature_set = load_feature_set(data / "schema.pbtxt")

    per_seed: list[dict] = []
    arrays: dict[str, baselines.ListArrays] = {}
    fingerprint = None
    for seed in seeds:
        ltr = run_ltr(work, data, seed)
        uri = ltr["examples_uri"]
        found = split_fingerprint(uri)
        if fingerprint is None:
            fingerprint = found
            arrays = {split: baselines.read_split(uri, split, feature_set) for split in SPLITS}
        elif found != fingerprint:
            sys.exit(f"seed {seed}: the run's splits differ from the first run's ({found} vs {fingerprint})")
        test = arrays["test"]
        evaluation = ltr["evaluation"]
        saved_model = path_utils.serving_model_path(evaluation["model_uri"])  # as the RankingEvaluator loads it
        scores = {"pipeline": baselines.serving_scores(saved_model, baselines.split_files(uri, "test"))}
        first_search = per_seed[0]["lgbm_cv_search"] if per_seed else None
        other = run_baselines(work, uri, feature_set, arrays, seed, settings, fingerprint, first_search)
        scores.update(other["scores"])
        seconds = {"pipeline": ltr["seconds"], **other["seconds"]}

        table = baselines.score_table(test, scores)
        summaries = {name: table.summary(name) for name in scores}
        # The pipeline's numbers must be its RankingEvaluator's, on the same lists.
        if summaries["pipeline"]["lists"] != evaluation["lists"] or any(
            abs(summaries["pipeline"]["metrics"][m] - evaluation["metrics"][m]) > 1e-6 for m in METRICS
        ):
            sys.exit(
                f"seed {seed}: the pipeline model rescored here {summaries['pipeline']} differs from its "
                f"RankingEvaluator's {evaluation['metrics']} on {evaluation['lists']} lists"
            )
        per_seed.append(
            {
                "seed": seed,
                "metrics": {name: s["metrics"] for name, s in summaries.items()},
                "seconds": seconds,
                "pipeline_fit_seconds": ltr["fit_seconds"],
                "pipeline_component_seconds": ltr["component_seconds"],
                "pipeline_blessed": evaluation["blessed"],
                "lgbm_cv_search": other["lgbm_cv_search"],
                "baselines_reused": other["reused"],
                "gap_pipeline_minus_lgbm_cv": table.difference("ndcg_10", "pipeline", "lgbm_cv"),
            }
        )
        print(f"seed {seed}: " + json.dumps({n: round(s["metrics"]["ndcg_10"], 4) for n, s in summaries.items()}))

    results = {
        name: {
            **{m: spread([s["metrics"][name][m] for s in per_seed]) for m in METRICS},
            "seconds": spread([s["seconds"][name] for s in per_seed]),
        }
        for name in RANKERS
    }
    pipe, cv = results["pipeline"]["ndcg_10"], results["lgbm_cv"]["ndcg_10"]
    gap = pipe["mean"] - cv["mean"]
    target_met = bool(gap > max(pipe["std"], cv["std"]))
    command = f"python benchmarks/quality.py --queries {args.queries} --seeds {args.seeds}"
    if (args.cv_trials, args.cv_folds) != (baselines.CV_TRIALS, baselines.CV_FOLDS):
        command += f" --cv-trials {args.cv_trials} --cv-folds {args.cv_folds}"
    if args.cv_search != "per-seed":
        command += f" --cv-search {args.cv_search}"
    if args.simple_epochs != baselines.SIMPLE_PIPELINE["num_epochs"]:
        command += f" --simple-epochs {args.simple_epochs}"
    searched = per_seed if args.cv_search == "per-seed" else per_seed[:1]
    machine = f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    lists = {split: {"lists": a.lists, "documents": int(a.groups.sum())} for split, a in arrays.items()}

    print(f"command: {command}")
    print(f"machine: {machine}")
    print(f"load:    {os.getloadavg()[0]:.1f} (1-min load average at the end)")
    print(
        f"data:    ltr sample-data --shape mslr, {args.queries:,} queries, {rows:,} rows; lists "
        + ", ".join(f"{s} {v['lists']:,}" for s, v in lists.items())
        + f" (the pipeline run's own splits, identical in all {len(seeds)} runs); "
        + f"{test.lists - summaries['pipeline']['lists_without_relevant']:,} test lists with a relevant document"
    )
    print(f"seeds:   {args.seeds} (mean ± std over seeds, ddof=1, [min–max]); NDCG as the RankingEvaluator computes it")
    print(
        f"LightGBM CV: {args.cv_trials} random configurations of {json.dumps(baselines.CV_GRID)}, "
        f"{args.cv_folds}-fold grouped by query over train, trees by early stopping (<= {baselines.MAX_TREES}, "
        f"patience {baselines.EARLY_STOP}); search "
        + ("per seed" if args.cv_search == "per-seed" else "once (first seed), refitted per seed")
        + "; chosen: "
        + "; ".join(json.dumps(s["lgbm_cv_search"]["best"]) for s in searched)
    )
    print()
    header = ["ranker", *[f"NDCG@{m.split('_')[1]}" for m in METRICS], "wall s"]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for name, label in RANKERS.items():
        cells = [label]
        for m in METRICS:
            r = results[name][m]
            cells.append(f"{r['mean']:.4f} ± {r['std']:.4f} [{r['min']:.4f}–{r['max']:.4f}]")
        cells.append(f"{results[name]['seconds']['mean']:.1f}")
        print("| " + " | ".join(cells) + " |")
    print()
    fit = spread([s["pipeline_fit_seconds"] for s in per_seed])
    print(f"pipeline wall s is the whole ltr run; its Tuner + Trainer took {fit['mean']:.1f} s (mean)")
    if args.cv_search == "once":
        first = per_seed[0]["seconds"]["lgbm_cv"]
        print(f"LightGBM CV-tuned wall s: search + refit {first:.1f} s for the first seed, then refits only")
    gaps = [s["gap_pipeline_minus_lgbm_cv"] for s in per_seed]
    print(
        "pipeline − CV-tuned LightGBM, NDCG@10 per seed (paired over test lists, bootstrap 95%): "
        + "; ".join(f"{g['mean']:+.4f} [{g['ci95'][0]:+.4f}, {g['ci95'][1]:+.4f}]" for g in gaps)
    )
    print(
        f"target (pipeline ahead of CV-tuned LightGBM by more than the seed spread): gap of means {gap:+.4f} vs "
        f"seed std {max(pipe['std'], cv['std']):.4f}: {'MET' if target_met else 'NOT MET'}"
    )
    payload = {
        "command": command,
        "machine": machine,
        "queries": args.queries,
        "rows": rows,
        "lists": lists,
        "split_sha256": fingerprint,
        "seeds": seeds,
        "cv_grid": baselines.CV_GRID,
        "cv_trials": args.cv_trials,
        "cv_folds": args.cv_folds,
        "simple_pipeline": {**baselines.SIMPLE_PIPELINE, "num_epochs": args.simple_epochs},
        "results": results,
        "per_seed": per_seed,
        "target": {"gap_ndcg_10": gap, "seed_std": max(pipe["std"], cv["std"]), "met": target_met},
    }
    baselines.dump(args.json, payload)
    print(f"json:    {args.json}")


if __name__ == "__main__":
    main()
