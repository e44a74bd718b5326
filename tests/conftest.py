"""Shared fixtures. TensorFlow logging is quietened before any test imports it."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from modules.features import FeatureSet, load_feature_set  # noqa: E402


@pytest.fixture(scope="session")
def feature_set() -> FeatureSet:
    return load_feature_set()
