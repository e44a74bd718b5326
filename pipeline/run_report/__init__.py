"""``ltr report``: a run's results as one static HTML page (inline SVG plots, no server).

The data flows through three modules, in this order:
``read`` (MLMD and the artifacts -> plain data), ``render`` (data -> HTML) and
``svg`` (numbers -> inline SVG charts). Nothing is recomputed from raw data, and
neither TensorFlow nor TFX's executors are imported.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

REPORTS_DIR = "reports"  # under pipeline_root: reports/<run id>/index.html, reports/versions/index.html
PAGE = "index.html"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"


def default_out_dir(pipeline_root: str, run_id: str) -> str:
    return os.path.join(pipeline_root, REPORTS_DIR, _safe(run_id))


def _write(out_dir: str, page: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, PAGE)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(page)
    os.replace(tmp, path)  # a reader never sees half a page
    return os.path.abspath(path)


def write_run_report(
    metadata_path,  # a SQLite path or an MLMD ConnectionConfig (pipeline.metadata_connection.metadata_target)
    pipeline_root: str,
    run_id: str | None = None,
    out_dir: str | None = None,
    model_name: str | None = None,
) -> str:
    """Writes the report of ``run_id`` (the latest run by default); returns the page's path."""
    from pipeline.run_report.read import read_run
    from pipeline.run_report.render import render_run

    data = read_run(metadata_path, run_id, model_name)
    return _write(out_dir or default_out_dir(pipeline_root, data.run_id), render_run(data))


def write_versions_report(config, out_dir: str | None = None) -> str:
    """Writes the page comparing the registry's versions; returns its path."""
    from pipeline.registry_cli import open_configured_registry
    from pipeline.run_report.read import read_versions
    from pipeline.run_report.render import render_versions

    registry = open_configured_registry(config)
    versions = read_versions(registry, config.model_name)
    out_dir = out_dir or os.path.join(config.pipeline_root, REPORTS_DIR, "versions")
    reports = os.path.join(config.pipeline_root, REPORTS_DIR)
    links = {}
    for v in versions:
        page = os.path.join(reports, _safe(v.pipeline_run_id or ""), PAGE)
        if v.pipeline_run_id and os.path.isfile(page):
            links[v.pipeline_run_id] = os.path.relpath(page, out_dir)
    return _write(out_dir, render_versions(config.model_name, registry.backend, versions, links))


def add_report_parser(subparsers, add_config_arguments) -> None:
    report = subparsers.add_parser("report", help="write a run's report (static HTML with plots) and print its path")
    add_config_arguments(report)
    report.add_argument("--run", dest="run_id", help="pipeline run id (MLMD pipeline_run context; default: the latest)")
    report.add_argument("--out", help="output folder (default: <pipeline_root>/reports/<run id>/)")
    report.add_argument("--versions", action="store_true", help="compare the registered versions instead of one run")


def main_report(args: argparse.Namespace) -> int:
    from pipeline.config import apply_overrides, load_config

    keys = ("registry_root", "metadata_path", "model_name", "registry.backend", "registry.mlflow_tracking_uri")
    config = apply_overrides(load_config(args.config), {k: getattr(args, k, None) for k in keys}).resolved()
    try:
        if args.versions:
            path = write_versions_report(config, args.out)
        else:
            from pipeline.metadata_connection import metadata_target

            path = write_run_report(
                metadata_target(config), config.pipeline_root, args.run_id, args.out, config.model_name
            )
    except (LookupError, FileNotFoundError) as error:
        print(f"ltr report: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0
