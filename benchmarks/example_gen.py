"""Benchmark: flat logs -> ELWC, the ExampleGen's Beam graph vs. the row-wise reference loop.

    python benchmarks/example_gen.py [--shape mslr] [--queries 2000] [--workers 1]
    python benchmarks/example_gen.py --shape csv [--rows 1000000] [--files 8] [--workers 2]

``mslr``: LETOR files shaped like MSLR-WEB10K (``ltr sample-data --shape mslr``: 136 float
features, ~120 documents per query, 4 files). ``csv``: the bundled sample schema's CSV logs.
The baseline is the row-at-a-time reference (``rows.parse_letor_row`` / ``rows.parse_row`` +
``elwc.build_elwc`` + a TFRecord writer, one process); both paths must write byte-identical
lists (checked for every list). Each path runs in its own subprocess so that its time, CPU
time and peak RSS (max over the process and its workers) are its own. Prints a table with
the command and the machine.
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


def _schema_path(data: str) -> str:
    from modules.features import DEFAULT_SCHEMA_PATH

    mslr = os.path.join(data, "..", "schema.pbtxt")
    return mslr if os.path.exists(mslr) else str(DEFAULT_SCHEMA_PATH)


def run_loop(data: str, out: str, max_list_size: int) -> dict:
    """The row-wise reference in one process: parse each row -> dict of lists -> build_elwc -> TFRecordWriter."""
    import tensorflow as tf

    from components.elwc_example_gen.elwc import build_elwc
    from components.elwc_example_gen.formats import FormatOptions
    from components.elwc_example_gen.rows import ColumnLayout, parse_letor_row, parse_row
    from modules.features import load_feature_set

    feature_set = load_feature_set(_schema_path(data))
    letor_map = FormatOptions().letor_map(feature_set)
    groups = collections.defaultdict(list)
    for path in sorted(glob.glob(os.path.join(data, "*"))):
        with open(path, newline="") as handle:
            if path.endswith(".csv"):
                reader = csv.reader(handle)
                layout = ColumnLayout.from_header(next(reader), feature_set, path)
                for cells in reader:
                    row = parse_row(cells, layout, feature_set, path, reader.line_num)
                    groups[row.query_id].append(row)
                continue
            for number, line in enumerate(handle, start=1):
                row = parse_letor_row(line, letor_map, feature_set, path, number)
                if row is not None:
                    groups[row.query_id].append(row)
    os.makedirs(out, exist_ok=True)
    documents = 0
    with tf.io.TFRecordWriter(os.path.join(out, "data.tfrecord.gz"), options="GZIP") as writer:
        for rows in groups.values():
            record, written, _ = build_elwc(rows, max_list_size)
            writer.write(record)
            documents += written
    return {"lists": len(groups), "documents": documents}


def run_beam(data: str, out: str, workers: int, max_list_size: int, chunk_bytes: int | None = None) -> dict:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from components.elwc_example_gen.beam_pipeline import build_graph
    from components.elwc_example_gen.formats import FormatOptions

    args = ["--runner=DirectRunner", f"--direct_num_workers={workers}"]
    args.append("--direct_running_mode=multi_processing" if workers > 1 else "--direct_running_mode=in_memory")
    with beam.Pipeline(options=PipelineOptions(args)) as pipeline:
        build_graph(
            pipeline,
            input_patterns=[os.path.join(data, "*")],
            split_names=["train"],
            buckets=[1],
            schema_text=open(_schema_path(data)).read(),
            options_json=(FormatOptions(chunk_bytes=chunk_bytes) if chunk_bytes else FormatOptions()).to_json(),
            max_list_size=max_list_size,
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

    start, cpu = time.perf_counter(), _cpu_seconds()
    if args.path == "loop":
        result = run_loop(args.data, args.out, args.max_list_size)
    else:
        result = run_beam(args.data, args.out, args.workers, args.max_list_size, args.chunk_bytes)
    result["seconds"] = time.perf_counter() - start
    result["cpu_seconds"] = _cpu_seconds() - cpu
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["peak_rss_mib"] = (self_kb + children_kb) / 1024
    result["output_bytes"] = sum(
        os.path.getsize(p) for p in glob.glob(os.path.join(args.out, "**", "*"), recursive=True) if "tfrecord" in p
    )
    print("RESULT " + json.dumps(result))


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _records(pattern: str) -> dict:
    """query id -> sha256 of its serialized ELWC."""
    import hashlib

    import tensorflow as tf
    from tensorflow_serving.apis import input_pb2

    out = {}
    for raw in tf.data.TFRecordDataset(glob.glob(pattern, recursive=True), compression_type="GZIP"):
        record = raw.numpy()
        elwc = input_pb2.ExampleListWithContext.FromString(record)
        out[elwc.context.features.feature["query_id"].bytes_list.value[0]] = hashlib.sha256(record).hexdigest()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=["mslr", "csv"], default="mslr")
    parser.add_argument("--queries", type=int, default=2000, help="mslr: queries")
    parser.add_argument("--rows", type=int, default=1_000_000, help="csv: rows")
    parser.add_argument("--files", type=int, default=8, help="csv: files")
    parser.add_argument("--workers", type=int, default=1, help="Beam DirectRunner workers (1: in_memory)")
    parser.add_argument("--max-list-size", type=int, default=200)
    parser.add_argument("--chunk-bytes", type=int, default=0, help="ExampleGen's chunk size (0: its default)")
    parser.add_argument("--path", choices=["loop", "beam"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        _child(args)
        return
    work = tempfile.mkdtemp(prefix="bench-example-gen-")
    if args.shape == "mslr":
        from pipeline.sample_data import MslrSpec, write_mslr_data

        rows = write_mslr_data(os.path.join(work, "mslr"), MslrSpec(queries=args.queries))
        data = os.path.join(work, "mslr", "span-1")
        files = len(glob.glob(os.path.join(data, "*.txt")))
        described = f"{rows:,} LETOR rows x 136 features ({args.queries:,} MSLR-shaped queries, {files} files)"
    else:
        data = os.path.join(work, "data")
        rows = generate(data, args.rows, args.files)
        described = f"{rows:,} rows in {args.files} CSV files"
    results = {}
    for path in ("loop", "beam"):
        out = os.path.join(work, path)
        cmd = [sys.executable, __file__, "--path", path, "--data", data, "--out", out, "--workers", str(args.workers)]
        cmd += ["--max-list-size", str(args.max_list_size), "--chunk-bytes", str(args.chunk_bytes)]
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
    # Same records, byte for byte, for every list.
    a = _records(os.path.join(work, "loop", "*.gz"))
    b = _records(os.path.join(work, "beam", "**", "*.gz"))
    assert a == b, "the two paths wrote different lists"

    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    load = os.getloadavg()[0]
    print(f"input:   {described}, {loop['lists']:,} lists; every list byte-identical in both outputs")
    print(f"load:    {load:.1f} (1-min load average at the end; CPU seconds are less sensitive to it than wall time)")
    print()
    print("| path | wall s | CPU s | docs/s (wall) | docs/s (CPU) | vs reference | peak RSS MiB | output bytes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    mode = "in_memory" if args.workers == 1 else "multi_processing"
    for name, label in (
        ("loop", "row-wise reference (1 process)"),
        ("beam", f"ElwcExampleGen Beam graph, DirectRunner {mode}, {args.workers} worker(s)"),
    ):
        r = results[name]
        rate, cpu_rate = r["documents"] / r["seconds"], r["documents"] / r["cpu_seconds"]
        ratio = loop["seconds"] / r["seconds"]
        peak, size = r["peak_rss_mib"], r["output_bytes"]
        print(
            f"| {label} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {rate:,.0f} | {cpu_rate:,.0f} | {ratio:.2f}x "
            f"| {peak:,.0f} | {size:,} |"
        )


if __name__ == "__main__":
    main()
