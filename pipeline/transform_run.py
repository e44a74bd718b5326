"""The pipeline up to Transform, run once with LocalDagRunner: inputs for Trainer tests and benchmarks.

``run_fn`` / ``tuner_fn`` need Transform's graph and ExampleGen's ELWC files;
this runs exactly the pipeline's own components that produce them (ImportSchemaGen,
ElwcExampleGen, Transform) and returns their paths.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path

from pipeline.config import Config, apply_overrides, load_config
from pipeline.local_run import ensure_sample_data
from pipeline.report import latest_run_report


@dataclasses.dataclass(frozen=True)
class TransformRun:
    examples_uri: str
    transform_graph_path: str
    schema_path: str
    data_root: str
    span: int

    def split_files(self, split: str) -> list[str]:
        files = sorted(glob.glob(os.path.join(self.examples_uri, f"Split-{split}", "*.gz")))
        if not files:
            raise FileNotFoundError(f"no {split} files under {self.examples_uri}")
        return files


def run_until_transform(
    home: str | Path,
    queries: int = 150,
    spans: int = 1,
    seed: int = 7,
    beam_args: list[str] | None = None,
    transform_overrides: dict[str, str] | None = None,
) -> TransformRun:
    """Generates sample data under ``home`` and runs the pipeline's components up to Transform.

    ``beam_args``: the Beam components' args (default: the config's DirectRunner args);
    ``transform_overrides``: ``transform.overrides`` (feature -> transform).
    """
    home = Path(home)
    config: Config = apply_overrides(
        load_config(),
        {
            "pipeline_name": "ltr-transform",
            "data_root": str(home / "data"),
            "pipeline_root": str(home / "pipeline"),
            "metadata_path": str(home / "metadata.sqlite"),
            "registry_root": str(home / "registry"),
            "sample_data.spans": spans,
            "sample_data.queries": queries,
            "sample_data.seed": seed,
            "tuner.enabled": False,
            "beam_args": beam_args,
            "transform.overrides": transform_overrides,
        },
    )
    ensure_sample_data(config)
    return run_transform(config)


def run_transform(config: Config) -> TransformRun:
    """The pipeline's components up to Transform on ``config``'s data (already there)."""
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from pipeline.pipeline import create_components, local_metadata_config, schema_path

    upstream = {"ImportSchemaGen", "ElwcExampleGen", "Transform"}
    components = [c for c in create_components(config) if c.id in upstream]
    if {c.id for c in components} != upstream:
        raise RuntimeError(f"pipeline components changed: found {[c.id for c in components]}")
    pipeline = tfx_pipeline.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=True,
        metadata_connection_config=local_metadata_config(config),
        beam_pipeline_args=list(config.beam_args),
    )
    LocalDagRunner().run(pipeline)
    report = latest_run_report(config.metadata_path)
    if not set(report.executions.values()) <= {"COMPLETE", "CACHED"}:
        raise RuntimeError(f"the run up to Transform did not complete: {report.executions}")
    examples = report.artifact("Examples")
    return TransformRun(
        examples_uri=examples.uri,
        transform_graph_path=report.artifact("TransformGraph").uri,
        schema_path=schema_path(config),
        data_root=config.data_root,
        span=examples.custom_properties["span"].int_value,
    )
