"""Deterministic sample ranking logs: the embedded default data set.

Flat CSV rows, one per (query, document), as a warehouse export would give
them, in span folders ``span-<N>/logs.csv``. Features have mixed scales
(counts, prices, ratios, a signed change) so that log1p matters, some values
are missing (empty cells), list lengths vary, and the graded label (0-4) comes
from a hidden relevance function plus noise. The noise-free relevance is
written to ``oracle/span-<N>.csv`` so tests can compute the oracle NDCG.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

COLUMNS = (
    "query_id",
    "doc_id",
    "position",
    "query_length",
    "user_tenure_days",
    "price",
    "price_change_7d",
    "num_reviews",
    "rating",
    "ctr_7d",
    "text_match",
    "label",
)
ORACLE_COLUMNS = ("query_id", "doc_id", "relevance", "label")
# Label thresholds on the noisy relevance (about 45/25/15/10/5 % of documents).
LABEL_QUANTILES = (0.45, 0.70, 0.85, 0.95)
NOISE = 0.35


@dataclasses.dataclass(frozen=True)
class SampleSpec:
    spans: int = 2
    queries: int = 400  # per span
    min_docs: int = 4
    max_docs: int = 30
    seed: int = 7


def hidden_relevance(cols: dict[str, np.ndarray]) -> np.ndarray:
    """The generator's true relevance from the complete (pre-missing) features."""
    reviews_weight = np.minimum(1.0, np.log1p(cols["num_reviews"]) / 5.0)
    tenure_weight = 1.0 - np.minimum(1.0, np.log1p(cols["user_tenure_days"]) / 8.0)
    return (
        np.log1p(cols["text_match"]) * (0.5 + 0.3 * np.log1p(cols["query_length"]))
        + 0.6 * (cols["rating"] - 3.0) * reviews_weight
        + 6.0 * cols["ctr_7d"]
        - 0.35 * np.log1p(cols["price"]) * tenure_weight
        - 0.3 * np.tanh(cols["price_change_7d"] / 50.0)
    )


def _span_columns(rng: np.random.Generator, span: int, spec: SampleSpec) -> dict[str, np.ndarray]:
    sizes = rng.integers(spec.min_docs, spec.max_docs + 1, size=spec.queries)
    n = int(sizes.sum())
    query_index = np.repeat(np.arange(spec.queries), sizes)
    query_length = rng.integers(1, 9, size=spec.queries)[query_index]
    tenure = np.floor(rng.lognormal(4.5, 1.5, size=spec.queries))[query_index]
    num_reviews = np.floor(rng.pareto(1.2, size=n) * 20)
    return {
        "query_id": np.array([f"s{span}-q{q:05d}" for q in query_index]),
        "doc_id": np.array([f"d{d:07d}" for d in rng.integers(0, 10**7, size=n)]),
        "position": np.concatenate([rng.permutation(s) for s in sizes]),
        "query_length": query_length.astype(np.float64),
        "user_tenure_days": tenure,
        "price": np.round(rng.lognormal(3.5, 1.2, size=n), 2),
        "price_change_7d": np.round(rng.normal(0, 30, size=n), 2),
        "num_reviews": num_reviews,
        "rating": np.round(np.clip(rng.normal(3.8, 0.8, size=n), 1.0, 5.0), 1),
        "ctr_7d": np.round(rng.beta(1.2, 20, size=n), 4),
        "text_match": np.round(rng.gamma(2.0, 3.0, size=n), 3),
        "_query_index": query_index,
    }


def _labels(rng: np.random.Generator, relevance: np.ndarray) -> np.ndarray:
    noisy = relevance + rng.normal(0, NOISE, size=relevance.size)
    return np.digitize(noisy, np.quantile(noisy, LABEL_QUANTILES)).astype(np.int64)


def _missing_masks(rng: np.random.Generator, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = cols["price"].size
    query_index = cols["_query_index"]
    return {
        # Context features are missing for a whole list, never for a single row.
        "user_tenure_days": (rng.random(query_index.max() + 1) < 0.10)[query_index],
        "num_reviews": rng.random(n) < 0.05,
        "rating": (cols["num_reviews"] == 0) | (rng.random(n) < 0.05),
        "price_change_7d": rng.random(n) < 0.05,
        "ctr_7d": rng.random(n) < 0.03,
    }


def _format(value: float | str, integer: bool) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if integer else repr(float(value))


_INTEGER_COLUMNS = {"position", "query_length", "user_tenure_days", "num_reviews", "label"}


def write_span(root: Path, span: int, spec: SampleSpec) -> int:
    """Writes one span's logs and oracle; returns the number of rows."""
    rng = np.random.default_rng([spec.seed, span])
    cols = _span_columns(rng, span, spec)
    relevance = hidden_relevance(cols)
    cols["label"] = _labels(rng, relevance)
    missing = _missing_masks(rng, cols)

    span_dir = root / f"span-{span}"
    span_dir.mkdir(parents=True, exist_ok=True)
    n = relevance.size
    with open(span_dir / "logs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for i in range(n):
            writer.writerow(
                "" if name in missing and missing[name][i] else _format(cols[name][i], name in _INTEGER_COLUMNS)
                for name in COLUMNS
            )
    oracle_dir = root / "oracle"
    oracle_dir.mkdir(parents=True, exist_ok=True)
    with open(oracle_dir / f"span-{span}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(ORACLE_COLUMNS)
        for i in range(n):
            writer.writerow((cols["query_id"][i], cols["doc_id"][i], repr(float(relevance[i])), int(cols["label"][i])))
    return n


def write_sample_data(root: str | Path, spec: SampleSpec | None = None) -> int:
    """Writes spans 1..spec.spans under ``root``; returns the total number of rows."""
    spec = spec or SampleSpec()
    root = Path(root)
    return sum(write_span(root, span, spec) for span in range(1, spec.spans + 1))


def read_oracle(root: str | Path, span: int) -> dict[str, tuple[list[float], list[int]]]:
    """query_id -> (hidden relevances, labels) of the span's documents."""
    lists: dict[str, tuple[list[float], list[int]]] = {}
    with open(Path(root) / "oracle" / f"span-{span}.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            relevances, labels = lists.setdefault(row["query_id"], ([], []))
            relevances.append(float(row["relevance"]))
            labels.append(int(row["label"]))
    return lists


# --- MSLR-WEB10K-shaped LETOR data (``ltr sample-data --shape mslr``) ---------------------------

MSLR_FEATURES = 136
# MSLR-WEB10K's label distribution (about 52/32/13/2/1 % for 0..4).
MSLR_LABEL_QUANTILES = (0.52, 0.84, 0.97, 0.99)
MSLR_NOISE = 0.5
MSLR_QUERIES_PER_FILE = 500


@dataclasses.dataclass(frozen=True)
class MslrSpec:
    spans: int = 1
    queries: int = 2000  # per span
    mean_docs: float = 120.0  # documents per query (log-normal, as in MSLR)
    min_docs: int = 5
    max_docs: int = 600
    features: int = MSLR_FEATURES
    missing_fraction: float = 0.01  # absent indices (MSLR itself has none; the pipeline must handle them)
    seed: int = 11


def mslr_feature_names(count: int = MSLR_FEATURES) -> list[str]:
    return [f"f{i:03d}" for i in range(1, count + 1)]


def mslr_schema_text(features: int = MSLR_FEATURES) -> str:
    """The schema of MSLR-shaped data: query id, doc id, label 0-4 and ``features`` float document features."""
    parts = [
        "# MSLR-WEB10K-shaped LETOR data (ltr sample-data --shape mslr); LETOR index i is feature i.",
        'feature { name: "query_id" type: BYTES annotation { tag: "role:query_id" } }',
        'feature { name: "doc_id" type: BYTES annotation { tag: "role:doc_id" } }',
        'feature { name: "label" type: INT int_domain { min: 0 max: 4 } annotation { tag: "role:label" } }',
    ]
    for name in mslr_feature_names(features):
        parts.append(f'feature {{ name: "{name}" type: FLOAT annotation {{ tag: "role:document" tag: "default:0" }} }}')
    return "\n".join(parts) + "\n"


def _mslr_features(rng: np.random.Generator, n: int, spec: MslrSpec) -> np.ndarray:
    """[n, features] float64: counts, BM25-like scores, ratios and heavy-tailed values, many zeros."""
    x = np.empty((n, spec.features))
    kinds = rng.integers(0, 4, size=spec.features)
    zero_share = rng.uniform(0.0, 0.7, size=spec.features)
    for j in range(spec.features):
        if kinds[j] == 0:  # term counts / lengths
            column = np.floor(rng.lognormal(rng.uniform(0, 3), 1.0, n))
        elif kinds[j] == 1:  # retrieval scores
            column = np.round(rng.gamma(2.0, rng.uniform(1, 10), n), 4)
        elif kinds[j] == 2:  # ratios
            column = np.round(rng.beta(1.5, 5.0, n), 6)
        else:  # heavy-tailed (PageRank, click counts)
            column = np.round(rng.pareto(1.3, n) * 100, 2)
        column[rng.random(n) < zero_share[j]] = 0.0
        x[:, j] = column
    return x


def mslr_hidden_relevance(x: np.ndarray, query_index: np.ndarray, seed: int) -> np.ndarray:
    """The learnable hidden relevance: a fixed nonlinear function of 16 of the features, plus a query effect."""
    rng = np.random.default_rng([seed, 0])
    informative = rng.choice(x.shape[1], size=16, replace=False)
    weights = rng.normal(0, 1, size=16)
    signal = np.log1p(np.abs(x[:, informative])) @ weights / 4.0
    signal += 0.5 * np.tanh(np.log1p(x[:, informative[0]]) - np.log1p(x[:, informative[1]]))
    query_effect = rng.normal(0, 0.3, size=query_index.max() + 1)[query_index]
    return signal + query_effect


def _letor_text(label, qid, docid, x: np.ndarray, absent: np.ndarray) -> bytes:
    """LETOR lines ``label qid:Q 1:v ... # docid = D`` built column-wise with pyarrow."""
    import pyarrow as pa
    import pyarrow.compute as pc

    empty = pa.scalar("", pa.string())
    parts = [pa.array(label.astype(str)), pc.binary_join_element_wise("qid:", pa.array(qid), empty)]
    for j in range(x.shape[1]):
        values = pa.array(x[:, j], mask=absent[:, j]).cast(pa.string())
        token = pc.binary_join_element_wise(f"{j + 1}:", values, empty)  # null where absent
        parts.append(pc.binary_join_element_wise(" ", token, empty, null_handling="replace", null_replacement=""))
    parts.append(pc.binary_join_element_wise(" # docid = ", pa.array(docid), "\n", empty))
    lines = pc.binary_join_element_wise(*parts[:2], " ")
    lines = pc.binary_join_element_wise(lines, *parts[2:], empty)
    offsets = np.frombuffer(lines.buffers()[1], np.int32, len(lines) + 1, lines.offset * 4)
    return lines.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]


def write_mslr_span(root: Path, span: int, spec: MslrSpec) -> int:
    rng = np.random.default_rng([spec.seed, span])
    sizes = np.clip(
        np.round(rng.lognormal(np.log(spec.mean_docs) - 0.125, 0.5, spec.queries)), spec.min_docs, spec.max_docs
    ).astype(np.int64)
    n = int(sizes.sum())
    query_index = np.repeat(np.arange(spec.queries), sizes)
    x = _mslr_features(rng, n, spec)
    relevance = mslr_hidden_relevance(x, query_index, spec.seed)
    noisy = relevance + rng.normal(0, MSLR_NOISE, size=n)
    label = np.digitize(noisy, np.quantile(noisy, MSLR_LABEL_QUANTILES)).astype(np.int64)
    absent = rng.random(x.shape) < spec.missing_fraction
    qid = np.char.add(str(span), np.char.zfill(query_index.astype(str), 6))  # numeric, as in MSLR
    docid = np.char.add(f"s{span}-d", np.arange(n).astype(str))
    span_dir = root / f"span-{span}"
    span_dir.mkdir(parents=True, exist_ok=True)
    bounds = np.searchsorted(query_index, np.arange(0, spec.queries + MSLR_QUERIES_PER_FILE, MSLR_QUERIES_PER_FILE))
    for part, (start, end) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        if start == end:
            continue
        rows = slice(start, end)
        text = _letor_text(label[rows], qid[rows], docid[rows], x[rows], absent[rows])
        (span_dir / f"part-{part:03d}.txt").write_bytes(text)
    oracle_dir = root / "oracle"
    oracle_dir.mkdir(parents=True, exist_ok=True)
    with open(oracle_dir / f"span-{span}.csv", "w", newline="") as handle:
        handle.write(",".join(ORACLE_COLUMNS) + "\n")
        handle.writelines(
            f"{q},{d},{r!r},{y}\n" for q, d, r, y in zip(qid, docid, relevance.tolist(), label.tolist(), strict=True)
        )
    return n


def write_mslr_data(root: str | Path, spec: MslrSpec | None = None) -> int:
    """MSLR-WEB10K-shaped LETOR spans under ``root`` with ``schema.pbtxt`` and ``config.yaml`` beside them.

    ``ltr run --config <root>/config.yaml`` runs the pipeline on it. Returns the number of rows.
    """
    spec = spec or MslrSpec()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = sum(write_mslr_span(root, span, spec) for span in range(1, spec.spans + 1))
    (root / "schema.pbtxt").write_text(mslr_schema_text(spec.features))
    (root / "config.yaml").write_text(
        "# Generated by `ltr sample-data --shape mslr`: run with `ltr run --config <this file>`.\n"
        f"data_root: {root.resolve()}\n"
        f"schema_path: {(root / 'schema.pbtxt').resolve()}\n"
        "examples:\n"
        '  input_pattern: "span-{SPAN}/*.txt"\n'
        "  format: letor\n"
    )
    return rows
