"""The `evaluation` and `registry` config sections: defaults and validation."""

import pytest

from pipeline.config import ConfigError, load_config


def test_defaults_gate_on_ndcg_10_relative_to_serving_and_trivial_without_an_absolute_floor():
    config = load_config()
    evaluation = config.evaluation
    assert (evaluation.metric, evaluation.max_regression, evaluation.min_lift, evaluation.min_value) == (
        "ndcg_10",
        0.01,
        0.01,
        None,
    )
    assert config.registry.backend == "local" and config.registry.mlflow_tracking_uri is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("evaluation:\n  metric: auc\n", "'evaluation.metric' = 'auc' must be one of ndcg_1, ndcg_5, ndcg_10, mrr"),
        ("evaluation:\n  min_value: 1.5\n", "'evaluation.min_value' = 1.5 must be null or within"),
        ("evaluation:\n  min_lift: 2\n", "'evaluation.min_lift' = 2 must be within"),
        ("evaluation:\n  max_regression: -0.1\n", "'evaluation.max_regression' = -0.1 must be within"),
        ("registry:\n  backend: s3\n", "'registry.backend' = 's3' must be one of local, mlflow"),
    ],
)
def test_invalid_values_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_mlflow_backend_with_a_tracking_uri(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("registry:\n  backend: mlflow\n  mlflow_tracking_uri: sqlite:////tmp/x.db\n")
    config = load_config(path)
    assert config.registry.backend == "mlflow" and config.registry.mlflow_tracking_uri == "sqlite:////tmp/x.db"
