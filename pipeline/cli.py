"""``ltr``: the command line of the ranking pipeline."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence

from pipeline.config import ConfigError, apply_overrides, load_config
from pipeline.retraining import RetrainingError


def _add_common_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `run` and `compile`: they override the config."""
    parser.add_argument("--config", help="YAML config file (merged over pipeline/default_config.yaml)")
    parser.add_argument(
        "--tuner",
        dest="tuner.enabled",
        choices=("on", "off"),
        type=str.lower,
        help="off: retrain without tuning, hyperparameters from --hyperparameters or the latest Tuner run",
    )
    parser.add_argument(
        "--hyperparameters", dest="tuner.hyperparameters_uri", help="HyperParameters artifact URI to import"
    )
    parser.add_argument("--span", dest="examples.span", type=int, help="process exactly this span (default: latest)")
    parser.add_argument("--train-steps", dest="training.train_steps", type=int)
    parser.add_argument("--tuner-trials", dest="tuner.max_trials", type=int)
    parser.add_argument("--tuner-steps", dest="tuner.train_steps", type=int)


def _add_run_parser(subparsers) -> None:
    run = subparsers.add_parser("run", help="run the whole pipeline locally (LocalDagRunner, SQLite MLMD)")
    _add_common_flags(run)
    run.add_argument("--data", dest="data_root", help="data root (ExampleGen input_base)")
    run.add_argument("--pipeline-root", dest="pipeline_root")
    run.add_argument("--metadata-path", dest="metadata_path", help="SQLite MLMD database file")
    run.add_argument("--registry-root", dest="registry_root")
    run.add_argument("--schema", dest="schema_path")
    run.add_argument("--max-list-size", dest="examples.max_list_size", type=int)
    run.add_argument("--input-format", dest="examples.format", help="auto | csv | jsonl | parquet | letor | elwc")
    run.add_argument("--max-bad-row-fraction", dest="examples.max_bad_row_fraction", type=float)
    run.add_argument("--rolling-window-spans", dest="examples.rolling_window_spans", type=int)
    run.add_argument("--list-size", dest="training.list_size", type=int)
    run.add_argument("--strategy", dest="training.strategy")
    run.add_argument("--no-cache", dest="enable_cache", action="store_const", const=False)
    run.add_argument("--beam-arg", dest="beam_args", action="append", help="Beam pipeline arg (repeatable)")


def _add_sample_parser(subparsers) -> None:
    sample = subparsers.add_parser("sample-data", help="write the deterministic sample ranking logs")
    sample.add_argument("--out", required=True, help="output folder (span-<N>/logs.csv, oracle/)")
    sample.add_argument("--spans", type=int, help="spans (default 2; mslr: 1)")
    sample.add_argument("--queries", type=int, help="queries per span (default 400; mslr: 2000)")
    sample.add_argument("--seed", type=int, default=7)
    sample.add_argument(
        "--shape",
        choices=["sample", "mslr"],
        default="sample",
        help="sample: the e-commerce CSV logs; mslr: LETOR files shaped like MSLR-WEB10K (136 features, ~120 "
        "documents per query) with schema.pbtxt and config.yaml beside them (--queries default 2000, 1 span)",
    )


def _add_compile_parser(subparsers) -> None:
    compile_ = subparsers.add_parser(
        "compile", help="compile the pipeline for Vertex AI Pipelines / Kubeflow Pipelines 2.x (KFP v2 JSON)"
    )
    _add_common_flags(compile_)
    compile_.add_argument(
        "--target",
        choices=("vertex", "kubeflow"),
        default="vertex",
        help="vertex: a PipelineJob JSON; kubeflow: its PipelineSpec JSON for KFP 2.x",
    )
    compile_.add_argument("--output-dir", default="kubeflow", help="where to write the JSON (default: kubeflow/)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ltr", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_run_parser(subparsers)
    _add_compile_parser(subparsers)
    _add_sample_parser(subparsers)
    from pipeline.registry_cli import add_config_arguments, add_lineage_parser, add_registry_parser

    add_registry_parser(subparsers, add_config_arguments)
    add_lineage_parser(subparsers)
    return parser


# Config keys that flags override (argparse dest names are the dotted keys).
_COMMON_OPTION_KEYS = (
    "tuner.enabled",
    "tuner.hyperparameters_uri",
    "examples.span",
    "training.train_steps",
    "tuner.max_trials",
    "tuner.train_steps",
)
_RUN_OPTION_KEYS = _COMMON_OPTION_KEYS + (
    "data_root",
    "pipeline_root",
    "metadata_path",
    "registry_root",
    "schema_path",
    "examples.max_list_size",
    "examples.format",
    "examples.max_bad_row_fraction",
    "examples.rolling_window_spans",
    "training.list_size",
    "training.strategy",
    "enable_cache",
    "beam_args",
)


def _config_from_args(args: argparse.Namespace, keys: tuple[str, ...]):
    overrides = {key: getattr(args, key) for key in keys}
    if overrides["tuner.enabled"] is not None:
        overrides["tuner.enabled"] = overrides["tuner.enabled"] == "on"
    return apply_overrides(load_config(args.config), overrides).resolved()


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.local_run import ensure_sample_data, run_local

    config = _config_from_args(args, _RUN_OPTION_KEYS)
    if ensure_sample_data(config):
        print(f"Generated sample data under {config.data_root}")
    report = run_local(config)
    failed = {node: state for node, state in report.executions.items() if state not in ("COMPLETE", "CACHED")}
    if failed:
        print(f"Run {report.run_id} did not complete: {failed}", file=sys.stderr)
        return 1
    from pipeline.registry_cli import print_run_summary

    print_run_summary(report)
    return 0


def _cmd_compile(args: argparse.Namespace) -> int:
    from pipeline.kubeflow import compile_pipeline

    config = _config_from_args(args, _COMMON_OPTION_KEYS)
    path = compile_pipeline(config, target=args.target, output_dir=args.output_dir)
    print(f"Compiled pipeline '{config.pipeline_name}' for {args.target}: {path}")
    return 0


def _cmd_sample_data(args: argparse.Namespace) -> int:
    from pipeline.sample_data import MslrSpec, SampleSpec, write_mslr_data, write_sample_data

    if args.shape == "mslr":
        spec = MslrSpec(spans=args.spans or 1, queries=args.queries or MslrSpec.queries, seed=args.seed)
        rows = write_mslr_data(args.out, spec)
        print(f"Wrote {rows} MSLR-shaped rows under {args.out}; run: ltr run --config {args.out}/config.yaml")
        return 0
    args.spans, args.queries = args.spans or 2, args.queries or 400
    rows = write_sample_data(args.out, SampleSpec(spans=args.spans, queries=args.queries, seed=args.seed))
    print(f"Wrote {rows} rows in {args.spans} span(s) under {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # google-api-core warns about Python 3.11's end of life at every import: not actionable here.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
    args = build_parser().parse_args(argv)
    # Progress logs for the long-running commands; the query commands print only their answer.
    level = logging.INFO if args.command in ("run", "compile", "sample-data") else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "compile":
            return _cmd_compile(args)
        if args.command in ("registry", "lineage"):
            from pipeline.registry_cli import main_registry

            return main_registry(args)
        return _cmd_sample_data(args)
    except ConfigError as error:
        print(f"ltr: configuration error: {error}", file=sys.stderr)
        return 2
    except RetrainingError as error:
        print(f"ltr: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
