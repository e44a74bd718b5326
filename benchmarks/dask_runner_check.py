"""Does Beam 2.59's experimental DaskRunner run this project's Beam stages? (Evidence for the README.)

dask is not part of the lock (apache-beam[dask] would add it); install it beside the
venv without touching it, then run:

    python -m pip install --no-deps --target /tmp/dask-site dask==2023.5.0 distributed==2023.5.0 \\
        fsspec==2023.5.0 toolz partd locket tblib sortedcontainers zict msgpack tornado click
    PYTHONPATH=/tmp/dask-site:. python benchmarks/dask_runner_check.py

Three attempts on a local dask.distributed cluster (LocalCluster):
1. a pipeline built from args, as TFX's executors build theirs (``--runner=...DaskRunner``);
2. a toy Create | GroupByKey | Map with the runner object;
3. ElwcExampleGen's Beam graph with the runner object.
Each prints OK or the error it ended with.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"


def _attempt(name: str, fn) -> None:
    try:
        fn()
        print(f"{name}: OK")
    except Exception as error:  # The point is to report what happened.
        print(f"{name}: FAILED {type(error).__name__}: {str(error).splitlines()[0][:300]}")


def _toy(pipeline: beam.Pipeline) -> None:
    with pipeline as p:
        grouped = p | beam.Create([("a", 1), ("b", 2), ("a", 3)]) | beam.GroupByKey()
        grouped | beam.Map(lambda kv: print("  computed", kv[0], sorted(kv[1])))


def _example_gen(make_pipeline) -> None:
    from tfx.dsl.components.base import base_beam_executor
    from tfx.proto import example_gen_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    from components.elwc_example_gen import executor as executor_lib
    from components.elwc_example_gen.formats import FormatOptions
    from pipeline.sample_data import SampleSpec, write_sample_data
    from tests.helpers import schema_artifact

    tmp = Path(tempfile.mkdtemp(prefix="dask-check-"))
    write_sample_data(tmp / "data", SampleSpec(spans=1, queries=20, seed=7))
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp / "out")
    output = example_gen_pb2.Output()
    output.split_config.splits.add(name="train", hash_buckets=3)
    output.split_config.splits.add(name="eval", hash_buckets=1)
    split = example_gen_pb2.Input.Split(name="single_split", pattern="span-1/*.csv")
    properties = {
        "input_base": str(tmp / "data"),
        "input_config": proto_utils.proto_to_json(example_gen_pb2.Input(splits=[split])),
        "output_config": proto_utils.proto_to_json(output),
        "output_data_format": example_gen_pb2.FORMAT_PROTO,
        "output_file_format": example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        "max_list_size": 0,
        "format_options": FormatOptions().to_json(),
        "max_bad_row_fraction": 1.0,
    }
    executor_lib.Executor._make_beam_pipeline = lambda self: make_pipeline()
    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=[], tmp_dir=str(tmp / "tmp"))
    executor_lib.Executor(context).Do({"schema": [schema_artifact(tmp)]}, {"examples": [examples]}, properties)
    print("  wrote", sorted(os.listdir(examples.uri)))


def main() -> None:
    from apache_beam.runners.dask.dask_runner import DaskRunner

    _attempt("1. --runner from args (TFX's way)", lambda: _toy(beam.Pipeline(argv=[f"--runner={DASK_RUNNER}"])))
    _attempt(
        "2. toy pipeline, runner object", lambda: _toy(beam.Pipeline(runner=DaskRunner(), options=PipelineOptions([])))
    )
    _attempt(
        "3. ElwcExampleGen graph, runner object",
        lambda: _example_gen(lambda: beam.Pipeline(runner=DaskRunner(), options=PipelineOptions([]))),
    )


if __name__ == "__main__":  # dask's LocalCluster spawns processes that re-import this module.
    main()
