"""ElwcExampleGen and Transform on Beam's portable runner (job service + external worker pool, 2 workers):
the same records and the same Transform graph as on the DirectRunner."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_serving.apis import input_pb2

from modules.features import DOCUMENT_BLOCK, Role, load_feature_set
from modules.transform.decoder import decode_elwc
from pipeline.beam_services import configured_beam, portable_beam_args, portable_runner
from pipeline.cli import _RUN_OPTION_KEYS, _config_from_args, build_parser
from pipeline.config import load_config
from pipeline.transform_run import run_until_transform
from tests.helpers import read_records

# Analyzers whose results depend on every document (full-pass mean/variance, quantiles).
OVERRIDES = {"price": "zscore", "rating": "bucketize", "user_tenure_days": "zscore"}
QUERIES = 80


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    direct = run_until_transform(tmp_path_factory.mktemp("direct"), queries=QUERIES, transform_overrides=OVERRIDES)
    with portable_runner(list(load_config().beam_args), workers=2) as services:
        portable = run_until_transform(
            tmp_path_factory.mktemp("portable"), queries=QUERIES, beam_args=services.args, transform_overrides=OVERRIDES
        )
        workers = services.workers_started()
    return direct, portable, workers, services


def _records(run, split: str) -> list[bytes]:
    return sorted(read_records(os.path.join(run.examples_uri, f"Split-{split}", "*.gz")))


def _canonical(records: list[bytes]) -> list[bytes]:
    """The lists as canonical bytes (feature maps in key order).

    The ExampleGen's bytes are equal only within one process: tfx_bsl's
    RecordBatchToExamples serializes each tf.Example's feature map in C++ protobuf's
    map order, which is seeded per process. The messages are equal either way.
    """
    return sorted(input_pb2.ExampleListWithContext.FromString(r).SerializeToString(deterministic=True) for r in records)


def test_stages_ran_in_at_least_two_external_worker_processes(runs):
    _, _, workers, services = runs
    assert "--runner=PortableRunner" in services.args and "--environment_type=EXTERNAL" in services.args
    assert len(set(workers)) >= 2, workers


def test_example_gen_writes_the_same_records_as_on_the_direct_runner(runs):
    direct, portable, _, _ = runs
    for split in ("train", "eval", "test"):
        assert _canonical(_records(portable, split)) == _canonical(_records(direct, split)), split
    assert sum(len(_records(direct, split)) for split in ("train", "eval", "test")) == QUERIES


def test_transform_graph_gives_the_same_outputs_as_on_the_direct_runner(runs):
    direct, portable, _, _ = runs
    feature_set = load_feature_set(direct.schema_path)
    raw = decode_elwc(tf.constant(_records(direct, "eval") + _records(direct, "train")), feature_set)
    outputs = {
        name: tft.TFTransformOutput(run.transform_graph_path).transform_features_layer()(dict(raw))
        for name, run in (("direct", direct), ("portable", portable))
    }
    assert set(outputs["direct"]) == set(outputs["portable"])
    for key, value in outputs["direct"].items():
        expected = value.flat_values.numpy() if isinstance(value, tf.RaggedTensor) else value.numpy()
        other = outputs["portable"][key]
        got = other.flat_values.numpy() if isinstance(other, tf.RaggedTensor) else other.numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, err_msg=key)
    # The analyzers really ran: z-scored prices (a column of the document block) have mean ~0.
    block = outputs["portable"][DOCUMENT_BLOCK]
    values = block.flat_values.numpy() if isinstance(block, tf.RaggedTensor) else block.numpy()
    price = [f.name for f in feature_set.numeric(Role.DOCUMENT)].index("price")
    assert abs(float(np.mean(values.reshape(-1, values.shape[-1])[:, price]))) < 0.2


def test_services_are_stopped_after_the_run_and_when_it_fails():
    with pytest.raises(RuntimeError, match="the run failed"):
        with portable_runner([], workers=2) as services:
            assert services.running()
            ports = [services.job_service.port, services.worker_pool.port]
            raise RuntimeError("the run failed")
    assert not services.running()
    for port in ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0


def test_portable_args_replace_the_runner_and_keep_the_rest():
    args = portable_beam_args(
        ["--direct_running_mode=in_memory", "--direct_num_workers=1", "--runner=DirectRunner", "--temp_location=/t"],
        job_port=1,
        worker_pool_port=2,
        workers=3,
    )
    assert args == [
        "--temp_location=/t",
        "--runner=PortableRunner",
        "--job_endpoint=127.0.0.1:1",
        "--environment_type=EXTERNAL",
        "--environment_config=127.0.0.1:2",
        "--direct_num_workers=3",
    ]


def test_ltr_run_beam_portable_selects_the_portable_runner():
    args = build_parser().parse_args(["run", "--beam", "portable", "--beam-workers", "3"])
    config = _config_from_args(args, _RUN_OPTION_KEYS)
    assert (config.beam.runner, config.beam.workers) == ("portable", 3)
    with configured_beam(load_config()) as unchanged:  # direct: nothing started, args as configured
        assert unchanged.beam_args == load_config().beam_args
