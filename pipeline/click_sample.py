"""Simulated interaction logs: impressions and events from a position-based click model.

``ltr sample-data --clicks --out DIR`` writes what a shop's logging would give
(the layout of ``/work/notes/CLICKS_SPEC.md``, documented in the README):

- ``span-<N>/impressions/part-00000.csv``: one row per shown (request, item), its
  1-based display ``position`` and the context and document features; no label.
- ``span-<N>/events/part-00000.csv``: ``request_id, item_id, event, timestamp``
  with ``event`` in click / add_to_cart / purchase, in time order; some clicks are
  logged twice, some events arrive hours late, a few refer to no impression.
- ``oracle/span-<N>.csv``: the true graded relevance (0-4), the examination
  probability used and the position of every impression; ``oracle/propensity.csv``:
  the true examination curve.
- ``schema.pbtxt`` and ``config.yaml`` beside them (``ltr run --config DIR/config.yaml``).

The click model (position-based, as in Joachims et al. 2017 and Wang et al. 2018):
the features and hidden relevance come from ``pipeline.sample_data``; a noisy
production ranker that also promotes expensive items orders each request's items; an item at position k is
examined with probability ``(1/k)^eta``; an examined item is clicked with
probability ``eps_plus + (1 - eps_plus - eps_minus) * (2^r - 1) / 15`` for grade r
(``eps_plus``: clicks on irrelevant items, ``eps_minus``: relevant items missed);
add_to_cart only follows a click, purchase only follows add_to_cart, both more
likely for relevant items. ``simulate`` returns the same logs as arrays, and
``write_flat_span`` the flat labelled CSV (label = the events' grade, or the true
relevance) that trains without the events join.
"""

from __future__ import annotations

import csv
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from modules.features import DEFAULT_SCHEMA_PATH
from pipeline.sample_data import (
    _INTEGER_COLUMNS,
    LABEL_QUANTILES,
    SampleSpec,
    _format,
    _missing_masks,
    _span_columns,
    hidden_relevance,
)

CONTEXT_FEATURES = ("query_length", "user_tenure_days")
DOCUMENT_FEATURES = ("price", "price_change_7d", "num_reviews", "rating", "ctr_7d", "text_match")
FEATURES = CONTEXT_FEATURES + DOCUMENT_FEATURES
IMPRESSION_COLUMNS = ("request_id", "item_id", "position", *FEATURES)
EVENT_COLUMNS = ("request_id", "item_id", "event", "timestamp")
ORACLE_COLUMNS = ("request_id", "item_id", "relevance", "examination", "position")
EVENTS = ("click", "add_to_cart", "purchase")
# The label mapping the generated config.yaml uses (and the flat form's click labels).
EVENT_LABELS = {"purchase": 2, "add_to_cart": 1, "click": 1}
MAX_GRADE = 4


@dataclasses.dataclass(frozen=True)
class ClickSpec:
    spans: int = 2
    queries: int = 400  # requests per span
    min_docs: int = 10
    max_docs: int = 30
    seed: int = 7
    eta: float = 1.0  # examination probability (1/position)^eta
    eps_plus: float = 0.1  # click probability of an examined irrelevant item (grade 0)
    eps_minus: float = 0.1  # 1 - click probability of an examined perfect item (grade 4)
    # The production ranker that ordered the items: z(relevance) + promotion * z(log1p(price)) + N(0, ranker_noise)
    # (z: standardized). It promotes expensive items, which are less relevant to most users: a model
    # trained naively on its clicks learns that promotion back.
    ranker_noise: float = 0.5
    promotion: float = 1.0
    cart_rate: float = 0.5  # P(add_to_cart | click) for a grade-4 item (scaled by r / 4)
    purchase_rate: float = 0.5  # P(purchase | add_to_cart) for a grade-4 item (scaled by r / 4)
    duplicate_rate: float = 0.03  # clicks logged twice
    late_rate: float = 0.02  # events logged hours after the request
    orphan_rate: float = 0.005  # events (share of all) whose (request, item) was never shown

    def __post_init__(self):
        if not (self.spans > 0 and self.queries > 0 and 1 <= self.min_docs <= self.max_docs):
            raise ValueError(f"click sample: need spans, queries > 0 and 1 <= min_docs <= max_docs ({self})")
        if self.eta <= 0:
            raise ValueError(f"click sample: eta must be > 0, got {self.eta}")
        if not (0 <= self.eps_plus and 0 <= self.eps_minus and self.eps_plus + self.eps_minus < 1):
            raise ValueError(f"click sample: need eps_plus, eps_minus >= 0 and eps_plus + eps_minus < 1 ({self})")


def examination(positions: np.ndarray, eta: float) -> np.ndarray:
    """The simulator's true examination probability of 1-based positions."""
    return (1.0 / np.asarray(positions, dtype=np.float64)) ** eta


def click_probability(grades: np.ndarray, eps_plus: float, eps_minus: float) -> np.ndarray:
    """P(click | examined, grade): eps_plus for grade 0 up to 1 - eps_minus for grade 4."""
    gain = (2.0 ** np.asarray(grades, dtype=np.float64) - 1.0) / (2.0**MAX_GRADE - 1.0)
    return eps_plus + (1.0 - eps_plus - eps_minus) * gain


@dataclasses.dataclass
class SimulatedSpan:
    """One span's logs as arrays, rows in (request, position) order."""

    columns: dict[str, np.ndarray]  # impression columns (IMPRESSION_COLUMNS), NaN where missing
    grade: np.ndarray  # true graded relevance 0-4
    relevance: np.ndarray  # the hidden continuous relevance behind the grade
    examination: np.ndarray  # probability used
    clicked: np.ndarray  # bool outcomes of each impression
    carted: np.ndarray
    bought: np.ndarray
    events: list[tuple[str, str, str, str]]  # (request_id, item_id, event, timestamp), time order

    @property
    def click_label(self) -> np.ndarray:
        """The grade ``EVENT_LABELS`` gives each impression (highest event wins; none: 0)."""
        label = np.zeros(self.clicked.size, np.int64)
        for outcome, event in ((self.clicked, "click"), (self.carted, "add_to_cart"), (self.bought, "purchase")):
            label = np.where(outcome, np.maximum(label, EVENT_LABELS[event]), label)
        return label


def simulate(span: int, spec: ClickSpec) -> SimulatedSpan:
    """One span of impressions and events from the position-based click model."""
    rng = np.random.default_rng([spec.seed, span, 12])
    base = SampleSpec(queries=spec.queries, min_docs=spec.min_docs, max_docs=spec.max_docs, seed=spec.seed)
    cols = _span_columns(rng, span, base)
    relevance = hidden_relevance(cols)
    grade = np.digitize(relevance, np.quantile(relevance, LABEL_QUANTILES)).astype(np.int64)
    missing = _missing_masks(rng, cols)
    query_index = cols["_query_index"]
    n = relevance.size

    # The production ranker, sorted within each request.
    ranker = _z(relevance) + spec.promotion * _z(np.log1p(cols["price"])) + rng.normal(0.0, spec.ranker_noise, n)
    order = np.lexsort((-ranker, query_index))
    starts = np.searchsorted(query_index[order], query_index[order], side="left")
    position = np.arange(n) - starts + 1  # 1-based, in the sorted order

    def take(values: np.ndarray) -> np.ndarray:
        return values[order]

    columns: dict[str, np.ndarray] = {
        "request_id": take(cols["query_id"]),
        "item_id": np.array([f"i{span}-{i:07d}" for i in rng.permutation(n)]),
        "position": position,
    }
    for name in FEATURES:
        values = cols[name].astype(np.float64)
        if name in missing:
            values = np.where(missing[name], np.nan, values)
        columns[name] = take(values)
    grade, relevance = take(grade), take(relevance)

    exam = examination(position, spec.eta)
    examined = rng.random(n) < exam
    clicked = examined & (rng.random(n) < click_probability(grade, spec.eps_plus, spec.eps_minus))
    carted = clicked & (rng.random(n) < spec.cart_rate * grade / MAX_GRADE)
    bought = carted & (rng.random(n) < spec.purchase_rate * grade / MAX_GRADE)
    events = _events(rng, span, spec, columns, clicked, carted, bought)
    return SimulatedSpan(columns, grade, relevance, exam, clicked, carted, bought, events)


def _z(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() or 1.0)


def _events(rng, span, spec, columns, clicked, carted, bought) -> list[tuple[str, str, str, str]]:
    """Timestamped events: request time, then click, cart and purchase seconds to minutes later."""
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=span)
    requests, request_index = np.unique(columns["request_id"], return_inverse=True)
    request_time = np.sort(rng.uniform(0, 86_400, requests.size))[request_index]
    rows: list[tuple[float, str, str, str]] = []
    for outcome, event, delay in ((clicked, "click", 30), (carted, "add_to_cart", 120), (bought, "purchase", 600)):
        for i in np.flatnonzero(outcome):
            seconds = request_time[i] + delay * (1 + rng.random())
            if rng.random() < spec.late_rate:  # arrives hours later (a late batch of the logger)
                seconds += rng.uniform(3_600, 6 * 3_600)
            rows.append((seconds, columns["request_id"][i], columns["item_id"][i], event))
            if event == "click" and rng.random() < spec.duplicate_rate:  # a double click
                rows.append((seconds + rng.uniform(0.1, 2), columns["request_id"][i], columns["item_id"][i], event))
    orphans = int(np.ceil(spec.orphan_rate * len(rows))) if rows else 0
    for k in range(orphans):  # an item this request never showed
        i = int(rng.integers(0, request_time.size))
        rows.append((request_time[i] + 60, columns["request_id"][i], f"i{span}-unknown{k:04d}", "click"))
    rows.sort()
    return [
        (request, item, event, (start + timedelta(seconds=float(s))).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        for s, request, item, event in rows
    ]


def _cell(name: str, value) -> str:
    if isinstance(value, (str, np.str_)):
        return str(value)
    if np.isnan(value):
        return ""
    return _format(float(value), name in _INTEGER_COLUMNS)


def _write_csv(path: Path, header: tuple[str, ...], rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _feature_rows(columns: dict[str, np.ndarray], names: tuple[str, ...]):
    arrays = [columns[name] for name in names]
    for i in range(arrays[0].size):
        yield [_cell(name, array[i]) for name, array in zip(names, arrays, strict=True)]


def write_span(root: Path, span: int, spec: ClickSpec) -> SimulatedSpan:
    """Impressions, events and oracle files of one span."""
    sim = simulate(span, spec)
    span_dir = root / f"span-{span}"
    _write_csv(
        span_dir / "impressions" / "part-00000.csv", IMPRESSION_COLUMNS, _feature_rows(sim.columns, IMPRESSION_COLUMNS)
    )
    _write_csv(span_dir / "events" / "part-00000.csv", EVENT_COLUMNS, sim.events)
    _write_csv(
        root / "oracle" / f"span-{span}.csv",
        ORACLE_COLUMNS,
        (
            (r, i, int(g), repr(float(e)), int(p))
            for r, i, g, e, p in zip(
                sim.columns["request_id"],
                sim.columns["item_id"],
                sim.grade,
                sim.examination,
                sim.columns["position"],
                strict=True,
            )
        ),
    )
    return sim


def schema_text() -> str:
    """The packaged schema with the click logs' domains: position 1-based, label any grade >= 0."""
    text = DEFAULT_SCHEMA_PATH.read_text()
    for old, new in (
        (
            'int_domain { min: 0 }\n  annotation { tag: "role:position" }',
            'int_domain { min: 1 }\n  annotation { tag: "role:position" }',
        ),
        (
            'int_domain { min: 0 max: 4 }\n  annotation { tag: "role:label" }',
            'int_domain { min: 0 }\n  annotation { tag: "role:label" }',
        ),
    ):
        if old not in text:
            raise RuntimeError(f"{DEFAULT_SCHEMA_PATH} changed: cannot find {old!r}")
        text = text.replace(old, new)
    head = (
        "# Simulated click logs (ltr sample-data --clicks): query_id is the request id, doc_id the item id\n"
        "# (mapped to the request_id / item_id columns in config.yaml), position the 1-based display rank,\n"
        "# label the grade of the (request, item)'s events (examples.events.labels in config.yaml).\n"
    )
    return head + text


def config_text(root: Path) -> str:
    labels = ", ".join(f"{event}: {grade}" for event, grade in EVENT_LABELS.items())
    return (
        "# Generated by `ltr sample-data --clicks`: run with `ltr run --config <this file>`.\n"
        f"data_root: {root.resolve()}\n"
        f"schema_path: {(root / 'schema.pbtxt').resolve()}\n"
        "examples:\n"
        '  input_pattern: "span-{SPAN}/impressions/*.csv"\n'
        "  columns: {query_id: request_id, doc_id: item_id}\n"
        "  events:\n"
        '    input_pattern: "span-{SPAN}/events/*.csv"\n'
        "    format: auto\n"
        "    event_column: event\n"
        "    timestamp_column: timestamp\n"
        f"    labels: {{{labels}}}\n"
        "training:\n"
        "  position_bias: ipw                # none | ipw | bias_tower (README: Position bias)\n"
        "  ipw_max_weight: 10.0\n"
        "evaluation:\n"
        "  # Under ipw the gate judges the counterfactual (propensity-weighted, unnormalised) DCG@10, unbiased\n"
        "  # for the true DCG; per-list NDCG cancels the weights in one-click lists (README: Position bias).\n"
        "  metric: dcg_10\n"
    )


def write_click_data(root: str | Path, spec: ClickSpec | None = None) -> int:
    """Spans 1..spec.spans of impressions and events, the oracle, schema.pbtxt and config.yaml.

    Returns the number of impressions.
    """
    spec = spec or ClickSpec()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = sum(write_span(root, span, spec).grade.size for span in range(1, spec.spans + 1))
    positions = np.arange(1, spec.max_docs + 1)
    _write_csv(
        root / "oracle" / "propensity.csv",
        ("position", "examination"),
        ((int(p), repr(float(e))) for p, e in zip(positions, examination(positions, spec.eta), strict=True)),
    )
    (root / "schema.pbtxt").write_text(schema_text())
    (root / "config.yaml").write_text(config_text(root))
    return rows


# --- the flat labelled form (the label a column of the impressions) ----------------------------

FLAT_COLUMNS = ("query_id", "doc_id", "position", *FEATURES, "label")


def write_flat_span(root: str | Path, span: int, spec: ClickSpec, label: str = "clicks") -> SimulatedSpan:
    """``span-<N>/logs.csv`` with the schema's column names and a label column the current
    pipeline reads without the events join: ``label="clicks"`` the grade the events give
    (``EVENT_LABELS``), ``label="oracle"`` the true relevance grade (0-4)."""
    if label not in ("clicks", "oracle"):
        raise ValueError(f"label must be 'clicks' or 'oracle', not {label!r}")
    sim = simulate(span, spec)
    columns = {
        **sim.columns,
        "query_id": sim.columns["request_id"],
        "doc_id": sim.columns["item_id"],
        "label": (sim.click_label if label == "clicks" else sim.grade).astype(np.float64),
    }
    _write_csv(Path(root) / f"span-{span}" / "logs.csv", FLAT_COLUMNS, _feature_rows(columns, FLAT_COLUMNS))
    return sim


def read_oracle(root: str | Path, span: int) -> dict[str, dict[str, int]]:
    """request_id -> {item_id: true grade} of a span (``oracle/span-<N>.csv``)."""
    lists: dict[str, dict[str, int]] = {}
    with open(Path(root) / "oracle" / f"span-{span}.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            lists.setdefault(row["request_id"], {})[row["item_id"]] = int(row["relevance"])
    return lists
