"""``ltr``: the command line of the ranking pipeline."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import traceback
import warnings
from collections.abc import Sequence

from pipeline.config import ConfigError, apply_overrides, load_config
from pipeline.retraining import RetrainingError

# Exit code of every error the project raises on purpose (bad config, schema or input).
USER_ERROR_EXIT = 2


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
    run.add_argument(
        "--sample",
        action="store_true",
        help="write the sample logs into the data root first if it holds no data (implied for the default data_root)",
    )
    run.add_argument(
        "--verbose", action="store_true", help="print every log line (TensorFlow, Beam, TFX) instead of a log file"
    )
    run.add_argument(
        "--beam",
        dest="beam.runner",
        choices=("direct", "portable"),
        help="portable: PortableRunner against Beam's job service and an external worker pool on 127.0.0.1",
    )
    run.add_argument("--beam-workers", dest="beam.workers", type=int, help="portable: SDK worker processes")


def _add_init_parser(subparsers) -> None:
    init = subparsers.add_parser(
        "init", help="read a sample of your data and write a starting schema.pbtxt and config.yaml"
    )
    init.add_argument("--data", required=True, help="folder holding the data (e.g. span-<N>/ folders of files)")
    init.add_argument("--format", default="auto", choices=("auto", "csv", "jsonl", "parquet", "letor", "elwc"))
    init.add_argument("--out", required=True, help="folder to write schema.pbtxt and config.yaml into")
    init.add_argument("--sample-rows", type=int, default=20_000, help="rows to read (default 20000)")
    init.add_argument("--force", action="store_true", help="overwrite an existing schema.pbtxt / config.yaml")
    init.add_argument("--query-id", help="the query id column, if its name is not recognised")
    init.add_argument("--label", help="the label column, if its name is not recognised")


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
    sample.add_argument(
        "--clicks",
        action="store_true",
        help="simulated interaction logs: span-<N>/impressions and span-<N>/events from a position-based click "
        "model, the true relevance and examination curve in oracle/, schema.pbtxt and config.yaml beside them",
    )
    sample.add_argument("--eta", type=float, help="--clicks: examination probability (1/position)^eta (default 1)")
    sample.add_argument(
        "--click-noise", type=float, help="--clicks: click probability of an examined irrelevant item (default 0.1)"
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
    _add_init_parser(subparsers)
    from pipeline.registry_cli import add_config_arguments, add_lineage_parser, add_registry_parser

    add_registry_parser(subparsers, add_config_arguments)
    add_lineage_parser(subparsers)
    from pipeline.run_report import add_report_parser

    add_report_parser(subparsers, add_config_arguments)
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
    "beam.runner",
    "beam.workers",
)


def _config_from_args(args: argparse.Namespace, keys: tuple[str, ...]):
    overrides = {key: getattr(args, key) for key in keys}
    if overrides["tuner.enabled"] is not None:
        overrides["tuner.enabled"] = overrides["tuner.enabled"] == "on"
    return apply_overrides(load_config(args.config), overrides).resolved()


def _uses_embedded_data(config, args: argparse.Namespace) -> bool:
    """Sample data is written only for the embedded default data_root, or with --sample."""
    return args.sample or config.data_root == load_config().resolved().data_root


def _cmd_run(args: argparse.Namespace, state: dict) -> int:
    from modules.memory import limit_malloc_arenas, use_plain_tensor_allocator, use_system_allocator_for_arrow

    # Every component runs in this process: cap glibc's arenas before TensorFlow's and
    # Beam's threads start, and keep TensorFlow's tensors and pyarrow's buffers out of pools
    # that keep what is freed, so what a component frees is returned before the next one
    # runs (modules/memory.py).
    limit_malloc_arenas()
    use_plain_tensor_allocator()
    use_system_allocator_for_arrow()
    from pipeline.local_run import ensure_sample_data
    from pipeline.run_output import RunConsole

    config = _config_from_args(args, _RUN_OPTION_KEYS)
    with RunConsole(config, verbose=args.verbose) as console:
        state["log_path"] = console.log_path
        if console.log_path:
            print(f"ltr run: pipeline '{config.pipeline_name}', full logs in {console.log_path}", file=console.out)
        if _uses_embedded_data(config, args) and ensure_sample_data(config):
            print(f"  generated the sample data under {config.data_root}", file=console.out)
        from pipeline.local_run import run_local
        from pipeline.pipeline import schema_path  # imports TFX: inside, so its noise goes to the log
        from pipeline.preflight import preflight

        schema_file = schema_path(config)
        checked = preflight(config, schema_file)
        for warning in checked.warnings:
            print(f"warning: {warning}", file=console.out)
        print(
            f"  data: {len(checked.files)} file(s) of span {checked.span} under {config.data_root}; "
            f"schema {schema_file} ({len(checked.feature_set.features)} features)",
            file=console.out,
        )
        report = run_local(config)
    failed = {node: s for node, s in report.executions.items() if s not in ("COMPLETE", "CACHED")}
    if failed:
        print(f"Run {report.run_id} did not complete: {failed}", file=sys.stderr)
        return 1
    from pipeline.registry_cli import print_run_summary

    print_run_summary(report)
    _print_run_report(config, report)
    if state.get("log_path"):
        print(f"Full logs:         {state['log_path']}")
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from pipeline.init_project import init_project

    init_project(
        args.data,
        args.out,
        fmt=args.format,
        sample_rows=args.sample_rows,
        force=args.force,
        query_id=args.query_id,
        label=args.label,
    )
    return 0


# ---- run report (issue 15): one call after the run summary; the page's code is pipeline/run_report/ ----
def _print_run_report(config, report) -> None:
    from pipeline.metadata_connection import metadata_target
    from pipeline.run_report import write_run_report

    # The run is over: MLMD's connection chatter would only interleave with the summary.
    quiet = [logging.getLogger(), logging.getLogger("absl")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        path = write_run_report(
            metadata_target(config), config.pipeline_root, report.run_id, model_name=config.model_name
        )
    except Exception as error:  # the run itself succeeded: say why there is no page, keep its exit status
        print(f"Run report:        not written: {type(error).__name__}: {error}", file=sys.stderr)
        return
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    print(f"Run report:        {path}")


def _cmd_compile(args: argparse.Namespace) -> int:
    from pipeline.kubeflow import compile_pipeline

    config = _config_from_args(args, _COMMON_OPTION_KEYS)
    path = compile_pipeline(config, target=args.target, output_dir=args.output_dir)
    print(f"Compiled pipeline '{config.pipeline_name}' for {args.target}: {path}")
    return 0


def _cmd_sample_data(args: argparse.Namespace) -> int:
    from pipeline.sample_data import MslrSpec, SampleSpec, write_mslr_data, write_sample_data

    if args.clicks:
        if args.shape != "sample":
            raise ConfigError("ltr sample-data: --clicks and --shape mslr cannot be combined")
        return _cmd_sample_clicks(args)
    if args.shape == "mslr":
        spec = MslrSpec(spans=args.spans or 1, queries=args.queries or MslrSpec.queries, seed=args.seed)
        rows = write_mslr_data(args.out, spec)
        print(f"Wrote {rows} MSLR-shaped rows under {args.out}; run: ltr run --config {args.out}/config.yaml")
        return 0
    args.spans, args.queries = args.spans or 2, args.queries or 400
    rows = write_sample_data(args.out, SampleSpec(spans=args.spans, queries=args.queries, seed=args.seed))
    print(f"Wrote {rows} rows in {args.spans} span(s) under {args.out}")
    return 0


def _cmd_sample_clicks(args: argparse.Namespace) -> int:
    import dataclasses

    from pipeline.click_sample import ClickSpec, write_click_data

    given = {"spans": args.spans, "queries": args.queries, "eta": args.eta, "eps_plus": args.click_noise}
    try:
        spec = dataclasses.replace(ClickSpec(seed=args.seed), **{k: v for k, v in given.items() if v is not None})
    except ValueError as error:
        raise ConfigError(f"ltr sample-data --clicks: {error}") from None
    rows = write_click_data(args.out, spec)
    print(
        f"Wrote {rows} impressions and their events in {spec.spans} span(s) under {args.out}; "
        f"run: ltr run --config {args.out}/config.yaml"
    )
    return 0


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Errors the project raises on purpose: a one-line message and exit code 2, no traceback."""
    from modules.features import SchemaError
    from pipeline.data_sample import SampleError
    from pipeline.init_project import InitError
    from pipeline.preflight import PreflightError

    types: list[type[BaseException]] = [
        ConfigError,
        RetrainingError,
        SchemaError,
        PreflightError,
        SampleError,
        InitError,
    ]
    if "components.elwc_example_gen.executor" in sys.modules:  # only after a run: importing them loads TFX
        from components.elwc_example_gen.driver import SpanNotFoundError
        from components.elwc_example_gen.executor import NoInputRowsError, TooManyBadRowsError
        from components.elwc_example_gen.formats import UnknownFormatError

        types += [SpanNotFoundError, TooManyBadRowsError, NoInputRowsError, UnknownFormatError]
    return tuple(types)


# Errors raised on purpose whose type does not survive (Beam re-raises a worker's error as a
# RuntimeError holding its text; run_fn raises a plain ValueError): recognised by their text.
_MARKERS = (
    re.compile(r"\b(?:SchemaError|SpanNotFoundError|TooManyBadRowsError|NoInputRowsError|UnknownFormatError): (.+)"),
    re.compile(r"(tuning is off but no hyperparameters reached the Trainer.*)"),
)


def user_error_message(error: BaseException) -> str | None:
    """The one-line message if ``error`` (or what it wraps) is an error raised on purpose, else None."""
    expected = _user_error_types()
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, expected):
            return _one_line(str(error))
        for marker in _MARKERS:
            found = marker.search(str(error))
            if found:
                return _one_line(found.group(1))
        error = error.__cause__ or error.__context__
    return None


def _one_line(message: str) -> str:
    message = message.strip().splitlines()[0] if message.strip() else message
    return re.sub(r" \[while running '[^']*'\]", "", message)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # google-api-core warns about Python 3.11's end of life at every import: not actionable here.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
    args = build_parser().parse_args(argv)
    # Progress logs for `run --verbose`, `compile`, `sample-data`; a quiet `run` sends them to its log file.
    level = logging.INFO if args.command in ("run", "compile", "sample-data") else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    state: dict = {}
    try:
        if args.command == "run":
            return _cmd_run(args, state)
        if args.command == "compile":
            return _cmd_compile(args)
        if args.command == "init":
            return _cmd_init(args)
        if args.command == "report":
            from pipeline.run_report import main_report

            return main_report(args)
        if args.command in ("registry", "lineage"):
            from pipeline.registry_cli import main_registry

            return main_registry(args)
        return _cmd_sample_data(args)
    except KeyboardInterrupt:
        print("ltr: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every error ends in one clear report
        log_path = state.get("log_path")
        where = f" (full log: {log_path})" if log_path else ""
        message = user_error_message(error)
        if message is not None:
            kind = "configuration error" if isinstance(error, ConfigError) else "error"
            print(f"ltr: {kind}: {message}{where}", file=sys.stderr)
            return USER_ERROR_EXIT
        trace = traceback.format_exc()
        if log_path:
            with open(log_path, "a") as handle:
                handle.write(trace)
        print(trace, file=sys.stderr, end="")
        print(f"ltr: internal error (a bug, please report it with the log){where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
