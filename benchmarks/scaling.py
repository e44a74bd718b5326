"""Benchmark: the whole pipeline on MSLR-shaped data at several sizes, with LightGBM alongside.

    PYTHONPATH=. python benchmarks/scaling.py [--sizes 500,2000,8000] [--work DIR]

For each size (queries): ``ltr sample-data --shape mslr`` data (136 float features, ~120
documents per query, 1 span), then ``ltr run --config <generated config>`` in a subprocess
with everything under ``<work>/<size>/``. Reported per size:

* seconds per component, from MLMD (each execution's create -> last update time);
* documents/s of ElwcExampleGen (rows read / its seconds) and of the whole run;
* peak RSS of the ``ltr run`` process tree (sum over the process and its children, sampled
  every 0.2 s with psutil), overall and per component: the highest sample taken while the
  component ran (its MLMD execution's create -> last update time). Components run one after
  the other in the same process, so a component's peak also holds what earlier ones left
  allocated (Python and glibc seldom hand freed memory back to the OS); and the CPU seconds
  of the tree over the same window (less sensitive than wall time to other jobs on the machine);
* with the same samples: peak PSS of the tree (``/proc/PID/smaps_rollup``: a page shared by
  the run process and its children, e.g. TensorFlow's libraries in the ServingCheck's process,
  counts once instead of once per process, but a page shared with a process outside the tree
  is divided with it too), the RSS of the ``ltr run`` process plus its children's private pages
  (shared pages counted once, whatever else runs), and peak RSS of the ``ltr run`` process alone;
* the pipeline's test NDCG@10 (RankingEvaluator), and LightGBM's ``LGBMRanker`` (lambdarank)
  trained on the same train lists and scored on the same test lists (the run's own
  ElwcExampleGen ``Split-train`` / ``Split-test`` records, read by ``benchmarks/baselines.py``),
  with its fit + predict seconds, in the same process run.

Prints a table with the command and the machine. LightGBM is a benchmark-only dependency.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline.sample_data import MslrSpec, write_mslr_data  # noqa: E402

COMPONENT_ORDER = [
    "ImportSchemaGen",
    "ElwcExampleGen",
    "DataViewBinder",
    "Transform",
    "Tuner",
    "Trainer",
    "latest_blessed_model_resolver",
    "RankingEvaluator",
    "RegistryPusher",
]


def smaps_rollup(pid: int) -> dict[str, int]:
    """Bytes of ``Pss`` (proportional set size: private pages plus a share of each page the process
    shares with others) and ``Private`` (its pages no other process maps) from ``/proc/<pid>/smaps_rollup``."""
    values = {"Pss": 0, "Private": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                if key == "Pss":
                    values["Pss"] = int(rest.split()[0]) * 1024
                elif key in ("Private_Clean", "Private_Dirty"):
                    values["Private"] += int(rest.split()[0]) * 1024
    except OSError:
        pass
    return values


def _tree_usage(process) -> tuple[int, float, int, int, int]:
    """Of a process and its live children: (RSS bytes, CPU seconds so far (with its finished
    children's), PSS bytes, RSS bytes of the top process alone, that RSS plus the children's
    private bytes)."""
    import psutil

    total, cpu, pss, own, children_private = 0, 0.0, 0, 0, 0
    try:
        for index, proc in enumerate([process, *process.children(recursive=True)]):
            try:
                rss = proc.memory_info().rss
                rollup = smaps_rollup(proc.pid)
                total += rss
                pss += rollup["Pss"]
                times = proc.cpu_times()
                cpu += times.user + times.system
                if index == 0:
                    cpu += times.children_user + times.children_system
                    own = rss
                else:
                    children_private += rollup["Private"]
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total, cpu, pss, own, own + children_private


def run_pipeline(config_path: Path, log_path: Path) -> tuple[dict, list[tuple[float, int, float]]]:
    """``ltr run`` in a subprocess: wall seconds, exit code, peak RSS of its process tree and its samples."""
    import psutil

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "ltr"), "run", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=config_path.parent,
        )
        # (epoch seconds, *_tree_usage)
        samples: list[tuple[float, int, float, int, int, int]] = []
        handle = psutil.Process(proc.pid)
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append((time.time(), *_tree_usage(handle)))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        stop.set()
        sampler.join()
    peak = max((sample[1] for sample in samples), default=0)
    peak_pss = max((sample[3] for sample in samples), default=0)
    peak_own = max((sample[4] for sample in samples), default=0)
    peak_own_private = max((sample[5] for sample in samples), default=0)
    return {
        "seconds": time.perf_counter() - start,
        "returncode": code,
        "peak_rss_mib": peak / 2**20,
        "peak_pss_mib": peak_pss / 2**20,
        "peak_own_rss_mib": peak_own / 2**20,
        "peak_own_private_mib": peak_own_private / 2**20,
    }, samples


def run_ltr_in(base: Path, data: Path, home: Path, what: str, seed: int | None = None):
    """``ltr run`` on ``data``'s config.yaml with its outputs under ``home`` (config and log in ``base``,
    ``training.seed`` if given); exits with the log's tail on failure. Returns ``run_pipeline``'s result."""
    text = (
        (data / "config.yaml").read_text()
        + f"pipeline_root: {home / 'pipeline'}\n"
        + f"metadata_path: {home / 'metadata.sqlite'}\n"
        + f"registry_root: {home / 'registry'}\n"
    )
    if seed is not None:
        text += f"training:\n  seed: {seed}\n"
    config, log = base / "config.yaml", base / "ltr-run.log"
    config.write_text(text)
    result = run_pipeline(config, log)
    if result[0]["returncode"]:
        sys.exit(f"ltr run failed {what} (log: {log}):\n{log.read_text()[-3000:]}")
    return result


def component_windows(metadata_path: str) -> dict[str, tuple[float, float]]:
    """(start, end) epoch seconds per node of the latest pipeline run, from MLMD execution times."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    runs = store.get_contexts_by_type("pipeline_run")
    run = max(runs, key=lambda c: c.create_time_since_epoch)
    windows: dict[str, tuple[float, float]] = {}
    for execution in store.get_executions_by_context(run.id):
        nodes = [c for c in store.get_contexts_by_execution(execution.id) if c.type == "node"]
        name = nodes[0].name.split(".")[-1] if nodes else str(execution.id)
        start, end = execution.create_time_since_epoch / 1000, execution.last_update_time_since_epoch / 1000
        if name in windows:
            start, end = min(start, windows[name][0]), max(end, windows[name][1])
        windows[name] = (start, end)
    return windows


def component_seconds(metadata_path: str) -> dict[str, float]:
    """Seconds per component of the latest run (its MLMD executions' create -> last update time)."""
    return {name: end - start for name, (start, end) in component_windows(metadata_path).items()}


RSS, PSS, OWN_RSS, OWN_PRIVATE = 1, 3, 4, 5  # fields of a sample


def component_peaks(
    windows: dict[str, tuple[float, float]], samples: list[tuple], field: int = RSS
) -> dict[str, float]:
    """Peak (MiB) of a sample field while each component ran (None if no sample fell inside): the
    process tree's RSS by default, or its PSS, or the RSS of the `ltr run` process alone."""
    peaks = {}
    for name, (start, end) in windows.items():
        inside = [sample[field] for sample in samples if start <= sample[0] <= end]
        peaks[name] = max(inside) / 2**20 if inside else None
    return peaks


def component_cpu(windows: dict[str, tuple[float, float]], samples: list[tuple]) -> dict[str, float]:
    """CPU seconds of the process tree while each component ran (steadier than wall time on a shared machine)."""
    cpu = {}
    for name, (start, end) in windows.items():
        inside = [sample[2] for sample in samples if start <= sample[0] <= end]
        cpu[name] = inside[-1] - inside[0] if len(inside) > 1 else None
    return cpu


def run_lightgbm(examples_uri: str, schema_path: Path) -> dict:
    """LightGBM's ``LGBMRanker`` (lambdarank, 300 trees, rate 0.05) fitted on the run's own ``Split-train``
    lists and scored on its ``Split-test`` lists (``benchmarks/baselines.py``), by the evaluator's metric."""
    from baselines import read_split, score_table  # sets OMP_WAIT_POLICY before LightGBM loads

    from modules.features import load_feature_set

    feature_set = load_feature_set(schema_path)
    train, test = (read_split(examples_uri, split, feature_set) for split in ("train", "test"))
    import lightgbm

    start = time.perf_counter()
    ranker = lightgbm.LGBMRanker(objective="lambdarank", n_estimators=300, learning_rate=0.05, verbose=-1)
    ranker.fit(train.features, train.labels, group=train.groups)
    scores = ranker.predict(test.features)
    seconds = time.perf_counter() - start
    summary = score_table(test, {"lightgbm": scores}).summary("lightgbm")
    return {"seconds": seconds, "ndcg_10": summary["metrics"]["ndcg_10"], "test_lists": summary["lists"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="500,2000,8000", help="queries per run, comma-separated")
    parser.add_argument("--work", default=None, help="working folder (default: a new temp folder)")
    parser.add_argument("--no-lightgbm", action="store_true", help="pipeline runs only (no LightGBM alongside)")
    args = parser.parse_args()
    import tempfile

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-scaling-")).resolve()
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        base = work / str(size)
        data = base / "data"
        rows = write_mslr_data(data, MslrSpec(queries=size))
        run, samples = run_ltr_in(base, data, base / "home", f"at {size} queries")
        windows = component_windows(str(base / "home" / "metadata.sqlite"))
        seconds = {name: end - start for name, (start, end) in windows.items()}
        peaks = {field: component_peaks(windows, samples, field) for field in (RSS, PSS, OWN_RSS, OWN_PRIVATE)}
        cpu = component_cpu(windows, samples)
        (base / "rss_samples.json").write_text(json.dumps({"windows": windows, "samples": samples}))
        from pipeline.report import latest_run_report

        report = latest_run_report(str(base / "home" / "metadata.sqlite"))
        examples = report.artifact("Examples")
        rows_read = examples.custom_properties["rows_read"].int_value
        lgbm = None if args.no_lightgbm else run_lightgbm(examples.uri, data / "schema.pbtxt")
        ndcg = report.evaluation["metrics"].get("ndcg_10")  # RankingEvaluator, eval split, full lists
        results.append((size, rows, run, seconds, ndcg, lgbm, rows_read, peaks, cpu))
        print(f"{size} queries done: {json.dumps(run)}", file=sys.stderr)

    print(f"command: python benchmarks/scaling.py --sizes {args.sizes}{' --no-lightgbm' if args.no_lightgbm else ''}")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"load:    {os.getloadavg()[0]:.1f} (1-min load average at the end)")
    print("data:    ltr sample-data --shape mslr (136 float features, ~120 documents per query); default config")
    print()
    names = [n for n in COMPONENT_ORDER if any(n in r[3] for r in results)]
    names += sorted({n for r in results for n in r[3]} - set(names))
    header = ["queries", "rows", *[f"{n} s" for n in names], "ltr run s", "ExampleGen docs/s", "run docs/s"]
    header += ["peak RSS MiB", "NDCG@10", "LightGBM s", "LightGBM NDCG@10"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---:|" * len(header))
    for size, rows, run, seconds, ndcg, lgbm, rows_read, _, _ in results:
        cells = [f"{size:,}", f"{rows:,}", *[f"{seconds.get(n, 0):.1f}" for n in names], f"{run['seconds']:.1f}"]
        example_gen = seconds.get("ElwcExampleGen") or float("nan")
        cells += [f"{rows_read / example_gen:,.0f}", f"{rows / run['seconds']:,.0f}", f"{run['peak_rss_mib']:,.0f}"]
        cells += [f"{ndcg:.4f}" if ndcg is not None else "-"]
        cells += [f"{lgbm['seconds']:.1f}", f"{lgbm['ndcg_10']:.4f}"] if lgbm else ["-", "-"]
        print("| " + " | ".join(cells) + " |")
    print()
    print("Peak memory (MiB) while each component ran. RSS: resident pages summed over the `ltr run` process and")
    print("its children (a shared library's pages count once per process mapping them); PSS: each page divided")
    print("among the processes sharing it (/proc/PID/smaps_rollup), so pages shared by the run process and its")
    print("children count once, but pages shared with processes outside the tree are divided with them too")
    print("(e.g. another Python using the same hard-linked TensorFlow libraries), so it depends on what else runs;")
    print("`ltr run` + children's private: RSS of the run process plus the pages only its children map (shared")
    print("pages counted once, whatever else runs); `ltr run` alone: RSS of the run process without its children.")
    print()
    print("| queries | measure | " + " | ".join(f"{n}" for n in names) + " | whole run |")
    print("|" + "---:|" * 2 + "---:|" * (len(names) + 1))
    labels = {
        RSS: "RSS, process tree",
        PSS: "PSS, process tree",
        OWN_PRIVATE: "`ltr run` + children's private",
        OWN_RSS: "RSS, `ltr run` alone",
    }
    whole_keys = {
        RSS: "peak_rss_mib",
        PSS: "peak_pss_mib",
        OWN_PRIVATE: "peak_own_private_mib",
        OWN_RSS: "peak_own_rss_mib",
    }
    for size, _, run, _, _, _, _, peaks, _ in results:
        for field, label in labels.items():
            cells = [f"{peaks[field][n]:,.0f}" if peaks[field].get(n) is not None else "-" for n in names]
            whole = run[whole_keys[field]]
            print(f"| {size:,} | {label} | " + " | ".join(cells) + f" | {whole:,.0f} |")
    print()
    print("CPU seconds of the `ltr run` process tree while each component ran (less sensitive to load than wall time):")
    print()
    print("| queries | " + " | ".join(f"{n}" for n in names) + " | ExampleGen docs per CPU s |")
    print("|" + "---:|" * (len(names) + 2))
    for size, _, _, _, _, _, rows_read, _, cpu in results:
        cells = [f"{cpu[n]:.1f}" if cpu.get(n) is not None else "-" for n in names]
        example_gen = cpu.get("ElwcExampleGen")
        rate = f"{rows_read / example_gen:,.0f}" if example_gen else "-"
        print(f"| {size:,} | " + " | ".join(cells) + f" | {rate} |")


if __name__ == "__main__":
    main()
