"""``ltr registry list|show|rollback`` and the summary printed at the end of ``ltr run``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from modules.ranking_metrics import METRIC_LABELS
from pipeline.config import Config

if TYPE_CHECKING:
    from pipeline.report import RunReport


def open_configured_registry(config: Config):
    from components.registry_pusher.backends import open_registry

    return open_registry(
        config.registry.backend,
        config.registry_root,
        config.registry.mlflow_tracking_uri or "",
        config.registry.mlflow_experiment,
    )


def _metrics_line(metrics: dict[str, float]) -> str:
    return "  ".join(f"{METRIC_LABELS.get(k, k)} {float(v):.4f}" for k, v in metrics.items())


def print_run_summary(report: RunReport, out=None) -> None:
    out = out or sys.stdout
    evaluation = report.evaluation
    registration = report.registration
    print(file=out)
    print(f"Run:               {report.run_id}", file=out)
    split = evaluation.get("split", "eval")
    lists = f"{split} split, {evaluation['lists']} lists"
    print(f"Candidate:         {_metrics_line(evaluation['metrics'])}  ({lists})", file=out)
    baseline = evaluation.get("baseline")
    if baseline:
        version = baseline.get("registry_version")
        served = f"served version {version}" if version is not None else f"model {baseline['model_artifact_id']}"
        print(f"Baseline:          {_metrics_line(baseline['metrics'])}  ({served})", file=out)
        gap = evaluation.get("difference")
        if gap:
            low, high = gap["ci95"]
            label = METRIC_LABELS.get(gap["metric"], gap["metric"])
            print(f"Gap to baseline:   {label} {gap['mean']:+.4f} (95% interval {low:+.4f} to {high:+.4f})", file=out)
    else:
        print("Baseline:          none (no version served yet)", file=out)
    trivial = evaluation.get("trivial")
    if trivial:
        print(f"Trivial ranker:    {_metrics_line(trivial['metrics'])}  ({trivial['ranker']})", file=out)
    print(f"Blessed:           {'yes' if evaluation['blessed'] else 'no'} ({evaluation['reason']})", file=out)
    for examples in report.rows_set_aside:
        read = f" of {examples['rows_read']}" if examples["rows_read"] is not None else ""
        where = f" (dead letter: {examples['dead_letter_uri']})" if examples["bad_rows"] else ""
        print(f"Rows set aside:    {examples['bad_rows']}{read}{where}", file=out)
    if registration["pushed"]:
        what = (
            "new version"
            if registration.get("newly_registered", True)
            else f"identical content to existing version {registration['version']}, nothing copied"
        )
        print(
            f"Registered model:  {registration['model_name']} version {registration['version']} "
            f"({what}, {registration['backend']} registry)",
            file=out,
        )
        print(f"Model path:        {registration['path']}", file=out)
    else:
        print(f"Not registered:    {registration['reason']}", file=out)
    print(f"MLMD database:     {report.metadata_path}", file=out)


def add_registry_parser(subparsers, add_config_arguments) -> None:
    registry = subparsers.add_parser("registry", help="list, inspect and roll back registered model versions")
    actions = registry.add_subparsers(dest="registry_command", required=True)
    for name, help_text in (
        ("list", "list the registered versions"),
        ("show", "show one version: path, metrics, lineage ids"),
        ("rollback", "serve VERSION from now on (see README: Model registry)"),
    ):
        action = actions.add_parser(name, help=help_text)
        add_config_arguments(action)
        if name != "list":
            action.add_argument("version", type=int)


def run_registry_command(args: argparse.Namespace, config: Config, out=None) -> int:
    out = out or sys.stdout
    registry = open_configured_registry(config)
    name = config.model_name
    if args.registry_command == "list":
        versions = registry.versions(name)
        if not versions:
            print(f"No versions of '{name}' in the {registry.backend} registry at {config.registry_root}", file=out)
            return 0
        print(f"{'':2}{'version':>7}  {'registered':<25} {'metrics':<60} path", file=out)
        for v in versions:
            metrics = v.metadata.get("metrics")
            if not isinstance(metrics, dict):  # MLflow keeps metrics as flat tags.
                metrics = {k.split(".", 1)[1]: v.metadata[k] for k in v.metadata if k.startswith("metrics.")}
            marker = "*" if v.serving else ""
            print(f"{marker:2}{v.version:>7}  {v.registered_at:<25} {_metrics_line(metrics):<60} {v.path}", file=out)
        print("(* = the version to serve)", file=out)
        return 0
    if args.registry_command == "show":
        v = registry.get(name, args.version)
        shown = {
            "model_name": v.model_name,
            "version": v.version,
            "serving": v.serving,
            "path": v.path,
            "source": v.source,
            "fingerprint": v.fingerprint,
            "registered_at": v.registered_at,
            "metadata": v.metadata,
        }
        print(json.dumps(shown, indent=2, sort_keys=True), file=out)
        return 0
    v = registry.set_serving(name, args.version)
    print(f"'{name}' now serves version {v.version} ({v.path})", file=out)
    if registry.backend == "local":
        from components.registry_pusher.registry import SERVING_CONFIG_FILE

        print(
            f"TF Serving: --model_config_file={registry.model_dir(name) / SERVING_CONFIG_FILE} "
            "(pins this version; poll it with --model_config_file_poll_wait_seconds)",
            file=out,
        )
    else:
        print(f"MLflow: alias 'serving' -> version {v.version} (models:/{name}@serving)", file=out)
    return 0


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that locate a registry and MLMD: a config file and a few overrides."""
    parser.add_argument("--config", help="YAML config file (merged over pipeline/default_config.yaml)")
    parser.add_argument("--registry-root", dest="registry_root")
    parser.add_argument("--metadata-path", dest="metadata_path", help="SQLite MLMD database file")
    parser.add_argument("--model-name", dest="model_name")
    parser.add_argument("--backend", dest="registry.backend", help="registry backend: local | mlflow")
    parser.add_argument("--mlflow-tracking-uri", dest="registry.mlflow_tracking_uri")


def config_from_args(args: argparse.Namespace) -> Config:
    from pipeline.config import apply_overrides, load_config

    keys = ("registry_root", "metadata_path", "model_name", "registry.backend", "registry.mlflow_tracking_uri")
    return apply_overrides(load_config(args.config), {k: getattr(args, k, None) for k in keys}).resolved()


def add_lineage_parser(subparsers) -> None:
    lineage = subparsers.add_parser("lineage", help="trace a registered version back through MLMD to its data")
    add_config_arguments(lineage)
    lineage.add_argument("version", type=int)
    lineage.add_argument("--json", action="store_true", help="print the lineage as JSON")


def run_lineage_command(args: argparse.Namespace, config: Config, out=None) -> int:
    out = out or sys.stdout
    from pipeline.lineage import format_lineage, lineage_of, model_artifact_id_of
    from pipeline.metadata_connection import metadata_target

    registered = open_configured_registry(config).get(config.model_name, args.version)
    lineage = lineage_of(
        metadata_target(config),
        model_artifact_id_of(registered),
        args.version,
        backend=config.registry.backend,
        model_name=config.model_name,
    )
    if args.json:
        print(json.dumps(lineage, indent=2, sort_keys=True, default=str), file=out)
    else:
        print(format_lineage(config.model_name, args.version, lineage), file=out)
    return 0


def main_registry(args: argparse.Namespace) -> int:
    """Entry point of ``ltr registry`` and ``ltr lineage``; lookup errors are reported, not raised."""
    import logging

    from components.registry_pusher.registry import RegistryError

    logging.getLogger().setLevel(logging.WARNING)  # Library INFO chatter would bury the answer.
    config = config_from_args(args)
    try:
        if args.command == "lineage":
            return run_lineage_command(args, config)
        return run_registry_command(args, config)
    except (RegistryError, LookupError, FileNotFoundError, ValueError) as error:  # ValueError: a path out of its root
        print(f"ltr {args.command}: {error}", file=sys.stderr)
        return 1
