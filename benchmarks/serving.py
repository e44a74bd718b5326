"""Benchmark: latency and throughput of the exported model's two serving signatures.

    python benchmarks/serving.py [--model DIR] [--calls 1000]

``serving_default`` (serialized ELWC) vs ``predict_tensors`` (one tensor per
feature), for one list of 10, 100 and 1,000 documents: p50/p99 latency over
``--calls`` calls after warm-up; then throughput with 64 lists per request
(ELWC) against 64 single-list calls (tensors). The model is loaded with plain
``tf.saved_model.load`` in this process, as TF Serving's in-process runtime
would, without this project's code. Default model: the newest version in
./ltr-home/registry/ranker (run `make run` first).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from components.elwc_example_gen.elwc import elwc_from_values  # noqa: E402

DOCUMENT_FEATURES = {  # name -> (is_int, generator) for synthetic requests
    "price": (False, lambda r, n: r.lognormal(3.5, 1.2, n)),
    "price_change_7d": (False, lambda r, n: r.normal(0, 30, n)),
    "num_reviews": (True, lambda r, n: np.floor(r.pareto(1.2, n) * 20)),
    "rating": (False, lambda r, n: r.uniform(1, 5, n)),
    "ctr_7d": (False, lambda r, n: r.beta(1.2, 20, n)),
    "text_match": (False, lambda r, n: r.gamma(2.0, 3.0, n)),
}
CONTEXT_FEATURES = {"query_length": 3, "user_tenure_days": 200}


def latest_model(root: str = "ltr-home/registry/ranker") -> str:
    versions = sorted((int(v) for v in os.listdir(root) if v.isdigit()), reverse=True) if os.path.isdir(root) else []
    if not versions:
        sys.exit(f"no registered model under {root}: run `make run` first or pass --model")
    return os.path.join(root, str(versions[0]))


def make_list(rng: np.random.Generator, n: int) -> tuple[bytes, dict[str, tf.Tensor]]:
    """One list of ``n`` documents, as serialized ELWC and as per-feature tensors."""
    columns = {name: gen(rng, n) for name, (_, gen) in DOCUMENT_FEATURES.items()}
    documents = [
        {
            name: int(columns[name][i]) if is_int else float(columns[name][i])
            for name, (is_int, _) in DOCUMENT_FEATURES.items()
        }
        for i in range(n)
    ]
    elwc = elwc_from_values(CONTEXT_FEATURES, documents)
    tensors = {name: tf.constant(col.astype(np.float32).reshape(-1, 1)) for name, col in columns.items()}
    tensors.update({name: tf.constant([[float(v)]]) for name, v in CONTEXT_FEATURES.items()})
    return elwc.SerializeToString(), tensors


def timed(fn, calls: int, warmup: int = 50) -> np.ndarray:
    for _ in range(warmup):
        fn()
    seconds = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        fn()
        seconds[i] = time.perf_counter() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    model_dir = args.model or latest_model()
    model = tf.saved_model.load(model_dir)
    elwc_sig, tensor_sig = model.signatures["serving_default"], model.signatures["predict_tensors"]
    rng = np.random.default_rng(0)

    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} cores; TF {tf.__version__}")
    print(f"model:   {model_dir}\n")
    print("| documents | signature | p50 ms | p99 ms | tensors/ELWC p50 |")
    print("|---:|---|---:|---:|---:|")
    for n in (10, 100, 1000):
        record, tensors = make_list(rng, n)
        batch = tf.constant([record])
        elwc = timed(lambda batch=batch: elwc_sig(examples=batch), args.calls) * 1e3
        tens = timed(lambda tensors=tensors: tensor_sig(**tensors), args.calls) * 1e3
        ratio = np.median(tens) / np.median(elwc)
        print(f"| {n} | serving_default (ELWC) | {np.median(elwc):.2f} | {np.percentile(elwc, 99):.2f} | 1.00 |")
        print(f"| {n} | predict_tensors | {np.median(tens):.2f} | {np.percentile(tens, 99):.2f} | {ratio:.2f} |")

    docs = 20
    lists = [make_list(rng, docs) for _ in range(64)]
    batch = tf.constant([record for record, _ in lists])
    rounds = max(10, args.calls // 20)
    elwc = timed(lambda: elwc_sig(examples=batch), rounds, warmup=5).sum()
    tens = timed(lambda: [tensor_sig(**t) for _, t in lists], rounds, warmup=2).sum()
    print(f"\nThroughput, 64 lists of {docs} documents per round, {rounds} rounds:\n")
    print("| path | lists/s | documents/s | vs ELWC batch |")
    print("|---|---:|---:|---:|")
    elwc_rate, tens_rate = 64 * rounds / elwc, 64 * rounds / tens
    print(f"| serving_default, 64 lists per call | {elwc_rate:,.0f} | {elwc_rate * docs:,.0f} | 1.00 |")
    print(
        f"| predict_tensors, 64 calls of 1 list | {tens_rate:,.0f} | {tens_rate * docs:,.0f} | "
        f"{tens_rate / elwc_rate:.2f} |"
    )


if __name__ == "__main__":
    main()
