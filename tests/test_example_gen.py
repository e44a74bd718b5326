"""ElwcExampleGen's executor on Beam and its span-aware driver, on tiny data."""

from __future__ import annotations

import pytest
from tfx.proto import example_gen_pb2, range_config_pb2

from components.elwc_example_gen import executor as executor_lib
from components.elwc_example_gen.driver import ElwcInputProcessor, SpanNotFoundError
from pipeline.sample_data import SampleSpec, write_sample_data
from tests.helpers import read_lists, run_example_gen


def _run_executor(tmp_path, pattern):
    return run_example_gen(tmp_path, {"single_split": pattern}, max_bad=0.0)


def test_csv_rows_become_one_elwc_per_query(tmp_path):
    write_sample_data(tmp_path / "data", SampleSpec(spans=1, queries=40, seed=1))
    examples = _run_executor(tmp_path, "span-1/*.csv")
    assert examples.get_string_custom_property("payload_format") == "FORMAT_PROTO"
    lists = read_lists(examples.uri, "train") + read_lists(examples.uri, "eval")
    with open(tmp_path / "data" / "span-1" / "logs.csv") as handle:
        lines = handle.read().splitlines()[1:]
    assert len(lists) == 40
    assert sum(len(elwc.examples) for elwc in lists) == len(lines)
    # Missing cells are absent from the proto, never zeros.
    empty_ratings = sum(1 for line in lines if line.split(",")[8] == "")
    assert empty_ratings > 0
    assert sum("rating" not in e.features.feature for elwc in lists for e in elwc.examples) == empty_ratings
    for elwc in lists:
        positions = [e.features.feature["position"].int64_list.value[0] for e in elwc.examples]
        assert positions == sorted(positions)


def test_bad_rows_over_the_allowed_fraction_fail_the_run_naming_file_and_line(tmp_path):
    data = tmp_path / "data" / "span-1"
    data.mkdir(parents=True)
    (data / "logs.csv").write_text("query_id,price,label\nq1,1.0,1\nq1,abc,0\n")
    with pytest.raises(executor_lib.TooManyBadRowsError, match=r"logs.csv:3: bad_value: column 'price'"):
        _run_executor(tmp_path, "span-1/*.csv")


def _make_spans(root, spans_versions):
    for span, version in spans_versions:
        folder = root / f"span-{span}" / f"v{version}" if version is not None else root / f"span-{span}"
        folder.mkdir(parents=True)
        (folder / "logs.csv").write_text("query_id,price,label\nq1,1.0,1\n")


def _resolve(root, pattern="span-{SPAN}/*.csv", span=None):
    range_config = None
    if span is not None:
        range_config = range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)
        )
    splits = [example_gen_pb2.Input.Split(name="single_split", pattern=pattern)]
    processor = ElwcInputProcessor(str(root), splits, range_config)
    span, version = processor.resolve_span_and_version()
    return span, version, processor.get_input_fingerprint(span, version)


def test_driver_picks_the_latest_span_by_default(tmp_path):
    _make_spans(tmp_path, [(1, None), (2, None), (10, None)])
    assert _resolve(tmp_path)[:2] == (10, None)


def test_driver_processes_exactly_the_requested_span(tmp_path):
    _make_spans(tmp_path, [(1, None), (2, None)])
    assert _resolve(tmp_path, span=1)[:2] == (1, None)


def test_an_absent_requested_span_is_an_error_not_a_fallback(tmp_path):
    _make_spans(tmp_path, [(1, None), (2, None)])
    with pytest.raises(SpanNotFoundError, match=r"requested span 5 .*span-\{SPAN\}/\*.csv"):
        _resolve(tmp_path, span=5)


def test_driver_picks_the_latest_version_and_fingerprints_input(tmp_path):
    _make_spans(tmp_path, [(1, 1), (1, 2)])
    pattern = "span-{SPAN}/v{VERSION}/*.csv"
    span, version, fingerprint = _resolve(tmp_path, pattern)
    assert (span, version) == (1, 2)
    assert _resolve(tmp_path, pattern)[2] == fingerprint  # unchanged input, same fingerprint
    (tmp_path / "span-1" / "v2" / "logs.csv").write_text("query_id,price,label\nq1,2.0,1\nq2,1.0,0\n")
    assert _resolve(tmp_path, pattern)[2] != fingerprint
