"""Shared fixtures. TensorFlow logging is quietened before any test imports it."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from modules.features import FeatureSet, load_feature_set  # noqa: E402


@pytest.fixture(scope="session")
def feature_set() -> FeatureSet:
    return load_feature_set()


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    """One LocalDagRunner run of the whole pipeline on tiny sample data: (config, RunReport)."""
    from pipeline.local_run import ensure_sample_data, run_local
    from tests.helpers import tiny_config

    config = tiny_config(tmp_path_factory.mktemp("ltr-home"))
    assert ensure_sample_data(config)
    return config, run_local(config)


@pytest.fixture(scope="session")
def transform_run(tmp_path_factory):
    """Sample data through the pipeline's components up to Transform, once per session (~1 min)."""
    from pipeline.transform_run import run_until_transform

    return run_until_transform(tmp_path_factory.mktemp("transform-run"), queries=160)
