"""Benchmark: ~1M flat rows -> ELWC, the ExampleGen's Beam graph vs. the plainest Python loop.

    python benchmarks/example_gen.py [--rows 1000000] [--files 8] [--workers 2]

Both paths read the same CSV files (bundled schema) and write GZIP TFRecords of
ELWC with the same lists and documents (checked). Each path runs in its own
subprocess so that peak memory (max RSS, including Beam's worker processes) is
its own. Prints a table with the command and the machine.
"""

from __future__ import annotations

import argparse
import collections
import csv
import glob
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
HEADER = (
    "query_id,doc_id,position,query_length,user_tenure_days,price,price_change_7d,num_reviews,rating,ctr_7d,"
    "text_match,label"
)


def generate(out: str, rows: int, files: int, seed: int = 0) -> int:
    """Sample-like logs (20 documents per query on average, ~5 % missing cells), split over ``files``."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(4, 37, size=rows // 20 + 1)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), rows) + 1]
    total = int(sizes.sum())
    query = np.repeat(np.arange(len(sizes)), sizes)
    position = np.concatenate([rng.permutation(s) for s in sizes])

    def maybe_missing(values: np.ndarray, fmt: str) -> np.ndarray:
        text = np.char.mod(fmt, values)
        text[rng.random(len(values)) < 0.05] = ""
        return text

    columns = [
        np.char.add("q", query.astype(str)),
        np.char.add("d", rng.integers(0, 10**7, total).astype(str)),
        position.astype(str),
        rng.integers(1, 9, len(sizes))[query].astype(str),
        rng.integers(0, 3000, len(sizes))[query].astype(str),
        maybe_missing(np.round(rng.lognormal(3.5, 1.2, total), 2), "%.2f"),
        maybe_missing(np.round(rng.normal(0, 30, total), 2), "%.2f"),
        maybe_missing(rng.integers(0, 5000, total), "%d"),
        maybe_missing(np.round(rng.uniform(1, 5, total), 1), "%.1f"),
        maybe_missing(np.round(rng.beta(1.2, 20, total), 4), "%.4f"),
        maybe_missing(np.round(rng.gamma(2, 3, total), 3), "%.3f"),
        rng.integers(0, 5, total).astype(str),
    ]
    lines = columns[0]
    for column in columns[1:]:
        lines = np.char.add(np.char.add(lines, ","), column)
    os.makedirs(out, exist_ok=True)
    bounds = np.searchsorted(query, np.linspace(0, len(sizes), files + 1).astype(int))  # whole queries per file
    for i in range(files):
        with open(os.path.join(out, f"part-{i:03d}.csv"), "w") as handle:
            handle.write(HEADER + "\n" + "\n".join(lines[bounds[i] : bounds[i + 1]].tolist()) + "\n")
    return total


def run_loop(data: str, out: str) -> dict:
    """The plainest single-process loop: csv.reader -> parse_row -> dict of lists -> build_elwc -> TFRecordWriter."""
    import tensorflow as tf

    from components.elwc_example_gen.elwc import build_elwc
    from components.elwc_example_gen.rows import ColumnLayout, parse_row
    from modules.features import load_feature_set

    feature_set = load_feature_set()
    groups = collections.defaultdict(list)
    for path in sorted(glob.glob(os.path.join(data, "*.csv"))):
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            layout = ColumnLayout.from_header(next(reader), feature_set, path)
            for cells in reader:
                row = parse_row(cells, layout, feature_set, path, reader.line_num)
                groups[row.query_id].append(row)
    os.makedirs(out, exist_ok=True)
    documents = 0
    with tf.io.TFRecordWriter(os.path.join(out, "data.tfrecord.gz"), options="GZIP") as writer:
        for rows in groups.values():
            record, written, _ = build_elwc(rows)
            writer.write(record)
            documents += written
    return {"lists": len(groups), "documents": documents}


def run_beam(data: str, out: str, workers: int) -> dict:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from components.elwc_example_gen.beam_pipeline import build_graph
    from components.elwc_example_gen.formats import FormatOptions
    from modules.features import DEFAULT_SCHEMA_PATH

    args = ["--runner=DirectRunner", f"--direct_num_workers={workers}"]
    args.append("--direct_running_mode=multi_processing" if workers > 1 else "--direct_running_mode=in_memory")
    with beam.Pipeline(options=PipelineOptions(args)) as pipeline:
        build_graph(
            pipeline,
            input_patterns=[os.path.join(data, "*.csv")],
            split_names=["train"],
            buckets=[1],
            schema_text=open(DEFAULT_SCHEMA_PATH).read(),
            options_json=FormatOptions().to_json(),
            max_list_size=0,
            split_uris={"train": os.path.join(out, "Split-train")},
            dead_letter_prefix=os.path.join(out, "dead_letter", "dead_letter"),
            stats_path=os.path.join(out, "_stats.json"),
        )
    with open(os.path.join(out, "_stats.json")) as handle:
        stats = json.load(handle)
    split = stats["splits"]["train"]
    return {"lists": split["lists"], "documents": split["documents"], "bad": stats.get("bad", {})}


def _child(args: argparse.Namespace) -> None:
    import apache_beam  # noqa: F401 - imports are not part of the timing
    import tensorflow  # noqa: F401

    import components.elwc_example_gen.beam_pipeline  # noqa: F401

    start = time.perf_counter()
    result = run_loop(args.data, args.out) if args.path == "loop" else run_beam(args.data, args.out, args.workers)
    result["seconds"] = time.perf_counter() - start
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["peak_rss_mib"] = (self_kb + children_kb) / 1024
    result["output_bytes"] = sum(
        os.path.getsize(p) for p in glob.glob(os.path.join(args.out, "**", "*"), recursive=True) if "tfrecord" in p
    )
    print("RESULT " + json.dumps(result))


def _records(pattern: str, limit: int) -> dict:
    import tensorflow as tf
    from tensorflow_serving.apis import input_pb2

    out = {}
    for raw in tf.data.TFRecordDataset(glob.glob(pattern, recursive=True), compression_type="GZIP"):
        elwc = input_pb2.ExampleListWithContext.FromString(raw.numpy())
        qid = elwc.context.features.feature["query_id"].bytes_list.value[0]
        if int(qid[1:]) < limit:
            out[qid] = elwc
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--path", choices=["loop", "beam"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        _child(args)
        return
    work = tempfile.mkdtemp(prefix="bench-example-gen-")
    data = os.path.join(work, "data")
    rows = generate(data, args.rows, args.files)
    results = {}
    for path in ("loop", "beam"):
        out = os.path.join(work, path)
        cmd = [sys.executable, __file__, "--path", path, "--data", data, "--out", out, "--workers", str(args.workers)]
        env = dict(
            os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="3"
        )
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not line:
            sys.exit(f"{path} failed:\n{proc.stderr[-3000:]}")
        results[path] = json.loads(line[0][7:])
    loop, beam_result = results["loop"], results["beam"]
    assert (loop["lists"], loop["documents"]) == (beam_result["lists"], beam_result["documents"]), results
    # Same records: a sample of lists compared as protos (feature order inside a map is not significant).
    a = _records(os.path.join(work, "loop", "*.gz"), 300)
    b = _records(os.path.join(work, "beam", "**", "*.gz"), 300)
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a), "the two paths wrote different lists"

    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(
        f"input:   {rows:,} rows in {args.files} CSV files, {loop['lists']:,} lists; outputs compared on {len(a)} lists"
    )
    print()
    print("| path | seconds | documents/s | vs loop | peak RSS MiB | output bytes |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, label in (
        ("loop", "plain Python loop (1 process)"),
        ("beam", f"Beam DirectRunner, {args.workers} workers"),
    ):
        r = results[name]
        rate = r["documents"] / r["seconds"]
        ratio = loop["seconds"] / r["seconds"]
        peak, size = r["peak_rss_mib"], r["output_bytes"]
        print(f"| {label} | {r['seconds']:.1f} | {rate:,.0f} | {ratio:.2f}x | {peak:,.0f} | {size:,} |")


if __name__ == "__main__":
    main()
