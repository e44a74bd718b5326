"""Run statistics: merged from the Beam side outputs, written as ``summary.json`` and MLMD properties.

Statistics are plain nested dicts of counts (``{"rows": 10, "bad": {"bad_value": 2}}``) so that
partial statistics from every file and every bundle merge by addition in one ``CombineGlobally``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import apache_beam as beam

Stats = dict[str, Any]
SUMMARY_FILE = "summary.json"
DEAD_LETTER_DIR = "dead_letter"


def merge_into(total: Stats, part: Stats) -> Stats:
    for key, value in part.items():
        if isinstance(value, dict):
            merge_into(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value
    return total


class MergeStats(beam.CombineFn):
    def create_accumulator(self) -> Stats:
        return {}

    def add_input(self, accumulator: Stats, element: Stats) -> Stats:
        return merge_into(accumulator, element)

    def merge_accumulators(self, accumulators: Iterable[Stats]) -> Stats:
        total: Stats = {}
        for accumulator in accumulators:
            merge_into(total, accumulator)
        return total

    def extract_output(self, accumulator: Stats) -> Stats:
        return accumulator


def _distribution(histogram: dict[str, int]) -> dict[str, Any]:
    sizes = sorted((int(size), count) for size, count in histogram.items())
    total = sum(count for _, count in sizes)
    if not total:
        return {"count": 0}

    def quantile(q: float) -> int:
        seen = 0
        for size, count in sizes:
            seen += count
            if seen >= q * total:
                return size
        return sizes[-1][0]

    return {
        "count": total,
        "min": sizes[0][0],
        "max": sizes[-1][0],
        "mean": round(sum(size * count for size, count in sizes) / total, 3),
        "p50": quantile(0.5),
        "p90": quantile(0.9),
        "p99": quantile(0.99),
        "histogram": {str(size): count for size, count in sizes},
    }


def build_summary(stats: Stats, split_names: list[str], max_list_size: int, dead_letter_uri: str) -> dict[str, Any]:
    """The user-facing summary of one run (also the source of the artifact's custom properties)."""
    splits = stats.get("splits", {})
    bad = dict(sorted(stats.get("bad", {}).items()))
    rows = int(stats.get("rows", 0))
    all_sizes: dict[str, int] = {}
    for split in splits.values():
        merge_into(all_sizes, split.get("list_sizes", {}))
    return {
        "rows_read": rows,
        "bad_rows": sum(bad.values()),
        "bad_row_fraction": round(sum(bad.values()) / rows, 6) if rows else 0.0,
        "dead_letter": bad,
        "dead_letter_uri": dead_letter_uri,
        "splits": {
            name: {
                "lists": int(splits.get(name, {}).get("lists", 0)),
                "documents": int(splits.get(name, {}).get("documents", 0)),
                "list_size": _distribution(splits.get(name, {}).get("list_sizes", {})),
            }
            for name in split_names
        },
        "list_size": _distribution(all_sizes),
        "max_list_size": max_list_size,
        "lists_capped": int(stats.get("lists_capped", 0)),
        "documents_cut_by_max_list_size": int(stats.get("documents_cut", 0)),
        "missing_values": dict(sorted(stats.get("missing", {}).items())),
        "dropped_features": dict(sorted(stats.get("dropped_features", {}).items())),
        "synthesized_query_ids": int(stats.get("synthesized_query_ids", 0)),
        "files": int(stats.get("files", 0)),
        # Nested list exports: fields naming no schema feature, per file where seen (nested.py).
        "ignored_fields": dict(sorted(stats.get("ignored_fields", {}).items())),
        # examples.events: events read, matched, duplicates, ignored types, impressions per label (events.py).
        **({"events": stats["events"]} if "events" in stats else {}),
    }


def custom_properties(summary: dict[str, Any]) -> dict[str, int | float | str]:
    """Flat MLMD custom properties: the numbers a dashboard or a resolver would filter on."""
    props: dict[str, int | float | str] = {
        "rows_read": summary["rows_read"],
        "bad_rows": summary["bad_rows"],
        "bad_row_fraction": float(summary["bad_row_fraction"]),
        "documents_cut_by_max_list_size": summary["documents_cut_by_max_list_size"],
        "dead_letter_counts": json.dumps(summary["dead_letter"], sort_keys=True),
        "missing_value_counts": json.dumps(summary["missing_values"], sort_keys=True),
        "list_size_distribution": json.dumps(
            {k: v for k, v in summary["list_size"].items() if k != "histogram"}, sort_keys=True
        ),
    }
    if "events" in summary:  # examples.events: how the labels were made
        props["events"] = json.dumps(summary["events"], sort_keys=True)
    if summary.get("ignored_fields"):
        props["ignored_fields"] = json.dumps(summary["ignored_fields"], sort_keys=True)
    for name, split in summary["splits"].items():
        props[f"{name}_lists"] = split["lists"]
        props[f"{name}_documents"] = split["documents"]
    return props
