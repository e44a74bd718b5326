import pytest

from pipeline.config import ConfigError, apply_overrides, load_config


def test_default_config_loads_and_resolves_paths(tmp_path):
    config = load_config().resolved(tmp_path)
    assert config.data_root == str(tmp_path / "ltr-home" / "data")
    assert config.metadata_path.endswith("metadata.sqlite")
    assert config.training.strategy == "mirrored"
    assert config.training.ensemble == "auto"
    assert config.tuner.enabled


def test_user_file_merges_over_the_default(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  train_steps: 7\nmodel_name: search\n")
    config = load_config(path)
    assert config.training.train_steps == 7
    assert config.training.batch_size == 32  # untouched default
    assert config.model_name == "search"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trainin:\n  train_steps: 7\n", r"unknown key\(s\) \['trainin'\]"),
        ("training:\n  train_steps: seven\n", "'training.train_steps' = 'seven' should be of type"),
        ("training:\n  train_steps: 0\n", "'training.train_steps' = 0 must be > 0"),
        ("training:\n  strategy: tpu\n", "must be one of none, mirrored"),
        ("training:\n  ensemble: many\n", "'training.ensemble' = 'many' must be auto or > 0"),
        ("training:\n  ensemble: 0\n", "'training.ensemble' = 0 must be auto or > 0"),
        ("evaluation:\n  metric: dcg_7\n", "'evaluation.metric' = 'dcg_7' must be one of .*dcg_10"),
        ("examples: 3\n", "'examples' must be a mapping"),
        ("[1, 2]\n", "top level must be a mapping"),
        ("training: {a: [}\n", "invalid YAML"),
    ],
)
def test_invalid_config_names_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert "bad.yaml" in str(caught.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")


def test_cli_overrides_are_validated():
    config = apply_overrides(load_config(), {"training.train_steps": 5, "examples.span": None})
    assert config.training.train_steps == 5 and config.examples.span is None
    with pytest.raises(ConfigError, match="command line: 'training.list_size' = -1"):
        apply_overrides(load_config(), {"training.list_size": -1})


def test_the_counterfactual_dcg_is_a_gate_metric(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("evaluation:\n  metric: dcg_10\n")
    assert load_config(path).evaluation.metric == "dcg_10"
