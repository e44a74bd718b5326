"""Benchmark: labels from interaction logs (examples.events) vs. logs that already carry the label.

    python benchmarks/events.py [--rows 200000] [--files 4]

The same sample-shaped CSV logs (``benchmarks/example_gen.py``'s generator) written three ways:

* ``labelled``: one row per (query, document) with the label column: the ordinary column-wise path
  (the baseline, measured in the same run);
* ``flat``: the label replaced by outcome columns ``clicked`` / ``bought`` (``events.input_pattern: null``);
* ``separate``: impressions without label plus an events file (a click for every label >= 1, an
  add_to_cart for half of them, a purchase for label 2, 2 % of events duplicated), joined in Beam.
  Labels are capped at 2 in all three shapes (the grades of the mapping).

Each path runs the ExampleGen's Beam graph (DirectRunner in_memory, 1 worker) in its own subprocess
and must write the same number of lists and documents with the same label histogram. Prints a table
with the command and the machine.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
LABELS = {"purchase": 2, "add_to_cart": 1, "click": 1}
FLAT_LABELS = {"bought": 2, "clicked": 1}


def write_shapes(work: str, rows: int, files: int) -> tuple[int, int]:
    """The three shapes of the same logs under work/{labelled,flat,separate}: (impressions, events)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    from benchmarks.example_gen import generate

    total = generate(os.path.join(work, "labelled"), rows, files)
    rng = np.random.default_rng(1)
    num_events = 0
    for path in sorted(glob.glob(os.path.join(work, "labelled", "*.csv"))):
        name = os.path.basename(path)
        table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types={"query_id": pa.string()}))
        # Events mapped back to grades give min(label, 2): keep the labelled baseline the same.
        label = np.minimum(table.column("label").to_numpy(), 2)
        table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(label))
        pcsv.write_csv(table, path)
        impressions = table.drop(["label"])
        flat = impressions.append_column("clicked", pa.array((label >= 1).astype(np.int8)))
        flat = flat.append_column("bought", pa.array((label >= 2).astype(np.int8)))
        os.makedirs(os.path.join(work, "flat"), exist_ok=True)
        pcsv.write_csv(flat, os.path.join(work, "flat", name))
        os.makedirs(os.path.join(work, "separate", "impressions"), exist_ok=True)
        os.makedirs(os.path.join(work, "separate", "events"), exist_ok=True)
        pcsv.write_csv(impressions, os.path.join(work, "separate", "impressions", name))
        capped = table.column("label").to_numpy()
        events = [
            (np.flatnonzero(capped >= 1), "click"),
            (np.flatnonzero((capped >= 1) & (rng.random(len(capped)) < 0.5)), "add_to_cart"),
            (np.flatnonzero(capped >= 2), "purchase"),
        ]
        index = np.concatenate([r for r, _ in events])
        kinds = np.concatenate([np.full(len(r), k) for r, k in events])
        duplicated = rng.random(len(index)) < 0.02
        index, kinds = np.concatenate([index, index[duplicated]]), np.concatenate([kinds, kinds[duplicated]])
        order = rng.permutation(len(index))
        take = pa.array(index[order])
        events_table = pa.table(
            {
                "query_id": table.column("query_id").take(take),
                "doc_id": table.column("doc_id").take(take),
                "event": pa.array(kinds[order]),
                "timestamp": pc.cast(pa.array(1714557600 + order.astype(np.int64)), pa.string()),
            }
        )
        pcsv.write_csv(events_table, os.path.join(work, "separate", "events", name))
        num_events += events_table.num_rows
    return total, num_events


def run(shape: str, work: str, out: str) -> dict:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from components.elwc_example_gen.beam_pipeline import build_graph
    from components.elwc_example_gen.events import EventsOptions
    from components.elwc_example_gen.formats import FormatOptions
    from modules.features import DEFAULT_SCHEMA_PATH

    events, events_pattern = None, None
    pattern = os.path.join(work, shape, "*.csv")
    if shape == "flat":
        events = EventsOptions(input_pattern=None, labels=FLAT_LABELS)
    elif shape == "separate":
        pattern = os.path.join(work, shape, "impressions", "*.csv")
        events = EventsOptions(input_pattern="events/*.csv", timestamp_column="timestamp", labels=LABELS)
        events_pattern = os.path.join(work, shape, "events", "*.csv")
    args = ["--runner=DirectRunner", "--direct_num_workers=1", "--direct_running_mode=in_memory"]
    with beam.Pipeline(options=PipelineOptions(args)) as pipeline:
        build_graph(
            pipeline,
            input_patterns=[pattern],
            split_names=["train"],
            buckets=[1],
            schema_text=open(DEFAULT_SCHEMA_PATH).read(),
            options_json=FormatOptions().to_json(),
            max_list_size=0,
            split_uris={"train": os.path.join(out, "Split-train")},
            dead_letter_prefix=os.path.join(out, "dead_letter", "dead_letter"),
            stats_path=os.path.join(out, "_stats.json"),
            events=events,
            events_pattern=events_pattern,
        )
    with open(os.path.join(out, "_stats.json")) as handle:
        stats = json.load(handle)
    split = stats["splits"]["train"]
    return {"lists": split["lists"], "documents": split["documents"], "bad": stats.get("bad", {})}


def label_histogram(out: str) -> dict:
    import tensorflow as tf
    from tensorflow_serving.apis import input_pb2

    counts: dict[int, int] = {}
    files = glob.glob(os.path.join(out, "Split-train", "*.gz"))
    for raw in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        for doc in input_pb2.ExampleListWithContext.FromString(raw.numpy()).examples:
            label = doc.features.feature["label"].int64_list.value[0]
            counts[label] = counts.get(label, 0) + 1
    return dict(sorted(counts.items()))


def _child(args) -> None:
    import apache_beam  # noqa: F401 - imports are not part of the timing

    import components.elwc_example_gen.beam_pipeline  # noqa: F401

    start = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = run(args.shape, args.work, args.out)
    after = resource.getrusage(resource.RUSAGE_SELF)
    result["seconds"] = time.perf_counter() - start
    result["cpu_seconds"] = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    result["peak_rss_mib"] = after.ru_maxrss / 1024
    result["labels"] = label_histogram(args.out)
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.shape:
        _child(args)
        return
    work = tempfile.mkdtemp(prefix="bench-events-")
    total, num_events = write_shapes(work, args.rows, args.files)
    results = {}
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="3")
    for shape in ("labelled", "flat", "separate"):
        out = os.path.join(work, f"out-{shape}")
        cmd = [sys.executable, __file__, "--shape", shape, "--work", work, "--out", out]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not line:
            sys.exit(f"{shape} failed:\n{proc.stderr[-3000:]}")
        results[shape] = json.loads(line[0][7:])
    base = results["labelled"]
    for shape, result in results.items():
        same = (result["lists"], result["documents"], result["labels"]) == (
            base["lists"],
            base["documents"],
            base["labels"],
        )
        assert same and not result["bad"], (shape, result, base)

    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(
        f"input:   {total:,} impressions and {num_events:,} events in {args.files} CSV files each, "
        f"{base['lists']:,} lists; labels "
        f"{base['labels']} identical in all three outputs; load {os.getloadavg()[0]:.1f} at the end"
    )
    print()
    print("| path | wall s | CPU s | impressions/s (wall) | vs labelled | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    names = {
        "labelled": "labelled logs (baseline: the column-wise path)",
        "flat": "flat outcome columns (events.input_pattern: null)",
        "separate": "impressions + events, CoGroupByKey join",
    }
    shutil.rmtree(work)
    for shape, result in results.items():
        rate = result["documents"] / result["seconds"]
        ratio = base["seconds"] / result["seconds"]
        print(
            f"| {names[shape]} | {result['seconds']:.1f} | {result['cpu_seconds']:.1f} | {rate:,.0f} | "
            f"{ratio:.2f}x | {result['peak_rss_mib']:,.0f} |"
        )


if __name__ == "__main__":
    main()
