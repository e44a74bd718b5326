"""Running the pipeline locally: LocalDagRunner with SQLite MLMD."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import Config
from pipeline.sample_data import SampleSpec, write_sample_data

if TYPE_CHECKING:
    from pipeline.report import RunReport

log = logging.getLogger(__name__)


def ensure_sample_data(config: Config) -> bool:
    """Writes the sample data into ``data_root`` if it holds no data; True if written."""
    root = Path(config.data_root)
    if root.exists() and any(root.iterdir()):
        return False
    sample = config.sample_data
    rows = write_sample_data(root, SampleSpec(spans=sample.spans, queries=sample.queries, seed=sample.seed))
    log.info("wrote %d sample rows under %s", rows, root)
    return True


def run_local(config: Config) -> RunReport:
    """Runs the whole pipeline with LocalDagRunner; returns the MLMD report of the run."""
    # Heavy import (~10 s): only when running. By module, not ``tfx.v1`` (see pipeline.pipeline).
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from pipeline.metadata_connection import metadata_target
    from pipeline.pipeline import TUNER_ID, create_pipeline, local_metadata_config
    from pipeline.report import latest_run_report
    from pipeline.retraining import check_hyperparameter_source

    if not config.tuner.enabled:
        log.info("retraining without the Tuner: hyperparameters %s", check_hyperparameter_source(config, TUNER_ID))
    from pipeline.beam_services import configured_beam

    with configured_beam(config) as run_config:  # portable: Beam's services run until the run ends
        LocalDagRunner().run(create_pipeline(run_config, local_metadata_config(run_config)))
    return latest_run_report(metadata_target(config))
