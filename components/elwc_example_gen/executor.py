"""Beam executor: flat CSV logs -> one ELWC record per query.

Reads each matched file whole (``fileio``) so every row keeps its file and
line number for error messages, parses rows by the schema, groups them by
query id with ``GroupByKey`` and serializes deterministic ELWC protos. The
base class splits them by hash and writes GZIP TFRecords; the artifact is
marked ``payload_format=FORMAT_PROTO``.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io import fileio
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.elwc_example_gen.data_view import attach_data_view
from components.elwc_example_gen.elwc import build_elwc
from components.elwc_example_gen.rows import ColumnLayout, ParsedRow, parse_row
from components.elwc_example_gen.spec import MAX_LIST_SIZE_KEY
from modules.features import FeatureSet, feature_set_from_schema

SCHEMA_TEXT_KEY = "_schema_pbtxt"
_COUNTER_NAMESPACE = "ElwcExampleGen"


def _feature_set(exec_properties: dict[str, Any]) -> FeatureSet:
    return feature_set_from_schema(text_format.Parse(exec_properties[SCHEMA_TEXT_KEY], schema_pb2.Schema()))


class _ParseCsvFile(beam.DoFn):
    """ReadableFile -> (query_id, ParsedRow) for every data row of the file."""

    def __init__(self, schema_text: str):
        self._schema_text = schema_text
        self._rows = beam.metrics.Metrics.counter(_COUNTER_NAMESPACE, "rows")

    def setup(self) -> None:
        self._feature_set = feature_set_from_schema(text_format.Parse(self._schema_text, schema_pb2.Schema()))

    def process(self, readable: fileio.ReadableFile) -> Iterator[tuple[bytes, ParsedRow]]:
        source = readable.metadata.path
        with readable.open() as raw:
            reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
            header = next(reader, None)
            if header is None:
                return
            layout = ColumnLayout.from_header(header, self._feature_set, source)
            for cells in reader:
                if not cells:
                    continue
                row = parse_row(cells, layout, self._feature_set, source, reader.line_num)
                self._rows.inc()
                yield row.query_id, row


class _BuildElwc(beam.DoFn):
    def __init__(self, max_list_size: int):
        self._max_list_size = max_list_size
        self._lists = beam.metrics.Metrics.counter(_COUNTER_NAMESPACE, "lists")
        self._documents = beam.metrics.Metrics.counter(_COUNTER_NAMESPACE, "documents")
        self._cut = beam.metrics.Metrics.counter(_COUNTER_NAMESPACE, "documents_cut_by_max_list_size")

    def process(self, element: tuple[bytes, list[ParsedRow]]) -> Iterator[bytes]:
        _, rows = element
        record, written, cut = build_elwc(rows, self._max_list_size)
        self._lists.inc()
        self._documents.inc(written)
        self._cut.inc(cut)
        yield record


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(bytes)
def _CsvToElwc(pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str) -> beam.PCollection:
    pattern = os.path.join(exec_properties["input_base"], split_pattern)
    return (
        pipeline
        | "MatchFiles" >> fileio.MatchFiles(pattern)
        | "ReadMatches" >> fileio.ReadMatches()
        | "ParseRows" >> beam.ParDo(_ParseCsvFile(exec_properties[SCHEMA_TEXT_KEY]))
        | "GroupByQuery" >> beam.GroupByKey()
        | "BuildElwc" >> beam.ParDo(_BuildElwc(exec_properties[MAX_LIST_SIZE_KEY]))
    )


class Executor(BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _CsvToElwc

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        schema_uri = artifact_utils.get_single_uri(input_dict["schema"])
        schema_file = io_utils.get_only_uri_in_dir(schema_uri)
        exec_properties = dict(exec_properties)
        exec_properties[SCHEMA_TEXT_KEY] = io_utils.read_string_file(schema_file)
        feature_set = _feature_set(exec_properties)  # Fail before Beam starts if the schema is invalid.
        super().Do(input_dict, output_dict, exec_properties)
        attach_data_view(artifact_utils.get_single_instance(output_dict["examples"]), feature_set)
