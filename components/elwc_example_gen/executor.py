"""Beam executor: ranking logs -> one ELWC record per query, with a dead letter and a summary.

The graph is in :mod:`beam_pipeline`. Around it this executor resolves the
configs, runs the pipeline under the pipeline's ``beam_pipeline_args``, writes
``summary.json``, sets the artifact's properties, and enforces the maximum
bad-row fraction. When that check fails the run raises; TFX's launcher then
deletes the output directory and publishes no Examples artifact, so the dead
letter is first moved next to it (``<component>/failed_runs/<execution>/``)
where the error message points.
"""

from __future__ import annotations

import json
import os
from typing import Any

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.example_gen import utils, write_split
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.utils import io_utils, proto_utils

from components.elwc_example_gen import events as events_lib
from components.elwc_example_gen.beam_pipeline import build_graph
from components.elwc_example_gen.data_view import attach_data_view
from components.elwc_example_gen.formats import FORMATS, FormatOptions
from components.elwc_example_gen.sources import CORRUPT_FILE, ON_CORRUPT_FILE, CorruptFileError
from components.elwc_example_gen.spec import (
    EVENTS_KEY,
    FORMAT_OPTIONS_KEY,
    MAX_BAD_ROW_FRACTION_KEY,
    MAX_LIST_SIZE_KEY,
)
from components.elwc_example_gen.summary import DEAD_LETTER_DIR, SUMMARY_FILE, build_summary, custom_properties
from modules.features import feature_set_from_schema

STATS_FILE = "_stats.json"
FAILED_RUNS_DIR = "failed_runs"
_EXAMPLES_IN_MESSAGE = 3


class TooManyBadRowsError(RuntimeError):
    """More rows were set aside than ``max_bad_row_fraction`` allows."""


class NoInputRowsError(RuntimeError):
    """The matched files held no rows at all."""


class Executor(base_beam_executor.BaseBeamExecutor):
    """Builds its own Beam graph (``beam_pipeline.build_graph``) rather than TFX's per-split one."""

    def Do(self, input_dict, output_dict, exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        schema_file = io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(input_dict["schema"]))
        schema_text = io_utils.read_string_file(schema_file)
        # Parsing the schema fails before Beam starts if it is invalid.
        feature_set = feature_set_from_schema(text_format.Parse(schema_text, schema_pb2.Schema()))
        options = FormatOptions.from_json(exec_properties.get(FORMAT_OPTIONS_KEY) or "")
        if options.format not in FORMATS:
            raise ValueError(f"unknown input format '{options.format}'; expected one of {FORMATS}")
        if options.on_corrupt_file not in ON_CORRUPT_FILE:
            raise ValueError(f"examples.on_corrupt_file '{options.on_corrupt_file}': expected one of {ON_CORRUPT_FILE}")
        max_list_size = int(exec_properties.get(MAX_LIST_SIZE_KEY) or 0)
        max_bad_fraction = float(exec_properties.get(MAX_BAD_ROW_FRACTION_KEY) or 0.0)

        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties["input_config"], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties["output_config"], output_config)
        split_names = utils.generate_output_split_names(input_config, output_config)
        input_base = exec_properties["input_base"]
        patterns = [os.path.join(input_base, split.pattern) for split in input_config.splits]
        buckets = None
        if output_config.split_config.splits:
            if len(patterns) != 1:
                raise ValueError("output splits by hash need exactly one input split")
            buckets, total = [], 0
            for split in output_config.split_config.splits:
                total += split.hash_buckets
                buckets.append(total)

        examples = artifact_utils.get_single_instance(output_dict["examples"])
        examples.split_names = artifact_utils.encode_split_names(split_names)
        split_uris = {name: artifact_utils.get_split_uri([examples], name) for name in split_names}
        dead_letter_dir = os.path.join(examples.uri, DEAD_LETTER_DIR)
        stats_path = os.path.join(examples.uri, STATS_FILE)

        events = events_lib.EventsOptions.from_json(exec_properties.get(EVENTS_KEY))
        events_pattern = None
        if events is not None:  # labels from impressions + events (events.py); span as the impressions'
            if len(patterns) != 1:
                raise ValueError("examples.events needs exactly one input split (the impressions)")
            events_pattern = events_lib.events_pattern_for(
                events,
                input_base,
                exec_properties.get(utils.SPAN_PROPERTY_NAME),
                exec_properties.get(utils.VERSION_PROPERTY_NAME),
            )

        with self._make_beam_pipeline() as pipeline:
            build_graph(
                pipeline,
                input_patterns=patterns,
                split_names=split_names,
                buckets=buckets,
                schema_text=schema_text,
                options_json=options.to_json(),
                max_list_size=max_list_size,
                split_uris=split_uris,
                dead_letter_prefix=os.path.join(dead_letter_dir, "dead_letter"),
                stats_path=stats_path,
                events=events,
                events_pattern=events_pattern,
            )

        stats = json.loads(io_utils.read_string_file(stats_path)) if fileio.exists(stats_path) else {}
        fileio.remove(stats_path) if fileio.exists(stats_path) else None
        summary = build_summary(stats, split_names, max_list_size, dead_letter_dir)
        io_utils.write_string_file(os.path.join(examples.uri, SUMMARY_FILE), json.dumps(summary, indent=2))
        if options.on_corrupt_file == "fail" and summary["dead_letter"].get(CORRUPT_FILE):
            corrupt = _first_entries(dead_letter_dir, reason=CORRUPT_FILE, limit=1)
            raise CorruptFileError(
                f"{corrupt[0] if corrupt else 'a compressed input is damaged'} "
                "(set examples.on_corrupt_file: dead_letter to set such files aside instead)"
            )
        self._check(summary, patterns, examples.uri, dead_letter_dir, max_bad_fraction)

        for name, value in custom_properties(summary).items():
            if isinstance(value, int):
                examples.set_int_custom_property(name, value)
            elif isinstance(value, float):
                examples.set_float_custom_property(name, value)
            else:
                examples.set_string_custom_property(name, value)
        examples.set_string_custom_property("payload_format", "FORMAT_PROTO")
        examples.set_string_custom_property(
            "file_format", write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP)
        )
        attach_data_view(examples, feature_set)
        # The driver records span/version as custom properties; the Examples type's own
        # properties are what span-based resolvers (the rolling window) read.
        for key in (utils.SPAN_PROPERTY_NAME, utils.VERSION_PROPERTY_NAME):
            if exec_properties.get(key) is not None:
                setattr(examples, key, int(exec_properties[key]))

    def _check(self, summary: dict, patterns: list[str], uri: str, dead_letter_dir: str, max_fraction: float) -> None:
        rows = summary["rows_read"]
        if not rows:
            raise NoInputRowsError(f"no rows read from {patterns} ({summary['files']} file(s) matched)")
        bad = summary["bad_rows"]
        if bad / rows <= max_fraction:
            return
        kept_at = self._preserve_dead_letter(uri, dead_letter_dir)
        raise TooManyBadRowsError(
            f"{bad} of {rows} rows ({bad / rows:.2%}) were bad, more than examples.max_bad_row_fraction="
            f"{max_fraction:g}; by reason: {summary['dead_letter']}. Every bad row, with its file, line and "
            f"reason, is in {kept_at}/*.jsonl (no Examples artifact was published). First ones: "
            f"{'; '.join(_first_entries(kept_at))}"
        )

    @staticmethod
    def _preserve_dead_letter(uri: str, dead_letter_dir: str) -> str:
        """Moves the dead letter out of the output dir, which TFX deletes when the executor fails."""
        component_dir = os.path.dirname(os.path.dirname(uri.rstrip("/")))
        target = os.path.join(component_dir, FAILED_RUNS_DIR, os.path.basename(uri.rstrip("/")), DEAD_LETTER_DIR)
        if fileio.exists(target):
            fileio.rmtree(target)
        fileio.makedirs(os.path.dirname(target))
        fileio.rename(dead_letter_dir, target)
        return target


def _first_entries(directory: str, reason: str | None = None, limit: int = _EXAMPLES_IN_MESSAGE) -> list[str]:
    found: list[str] = []
    for path in sorted(fileio.glob(os.path.join(directory, "*.jsonl"))):
        with fileio.open(path) as handle:
            for line in handle:
                if len(found) >= limit:
                    return found
                entry = json.loads(line)
                if reason and entry["reason"] != reason:
                    continue
                if entry["reason"] == CORRUPT_FILE:
                    found.append(entry["detail"])  # already names the file
                else:
                    found.append(f"{entry['source']}:{entry['line']}: {entry['reason']}: {entry['detail']}")
    return found
