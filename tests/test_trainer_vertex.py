"""The same config yields Vertex AI worker pools for TFX's Google Cloud Trainer and Tuner."""

from __future__ import annotations

import pytest

from modules.training.config import TrainingConfig
from modules.training.trainer import TrainJob  # noqa: F401  (run_fn's module must import without cloud packages)
from pipeline.config import apply_overrides, load_config
from pipeline.vertex_training import VertexSpec, vertex_trainer_args, vertex_tune_args, vertex_tuner_args

SPEC = VertexSpec(project="my-project", region="europe-west4", image_uri="europe-docker.pkg.dev/p/ltr/ltr:1")


def _config(**training):
    return apply_overrides(load_config(), {f"training.{k}": v for k, v in training.items()})


def _pools(args):
    return args["ai_platform_training_args"]["job_spec"]["worker_pool_specs"]


@pytest.mark.parametrize(
    ("training", "replicas"),
    [
        ({"strategy": "mirrored"}, [1]),
        ({"strategy": "none"}, [1]),
        ({"strategy": "multi_worker", "workers": 4}, [1, 3]),
        ({"strategy": "multi_worker", "workers": 1}, [1]),
        ({"strategy": "parameter_server", "workers": 3, "parameter_servers": 2}, [1, 3, 2]),
    ],
)
def test_trainer_pools_follow_the_strategy(training, replicas):
    args = vertex_trainer_args(_config(**training), SPEC)
    assert args["ai_platform_enable_vertex"] is True
    assert args["ai_platform_vertex_region"] == "europe-west4"
    assert args["ai_platform_training_args"]["project"] == "my-project"
    pools = _pools(args)
    assert [p["replica_count"] for p in pools] == replicas
    assert all(p["container_spec"]["image_uri"] == SPEC.image_uri for p in pools)
    # run_fn reads exactly the training section back from the same custom_config.
    assert TrainingConfig.from_custom_config(args) == _config(**training).training


def test_accelerators_go_to_chief_and_workers_not_to_parameter_servers():
    spec = VertexSpec(
        project="p", region="us-central1", image_uri="img", accelerator_type="NVIDIA_TESLA_T4", accelerator_count=2
    )
    pools = _pools(vertex_trainer_args(_config(strategy="parameter_server", workers=2), spec))
    assert [p["machine_spec"].get("accelerator_count") for p in pools] == [2, 2, None]
    assert pools[2]["machine_spec"]["machine_type"] == "n1-standard-4"


def test_tuner_args_carry_the_tuner_section_and_parallel_trials():
    spec = VertexSpec(project="p", region="us-central1", image_uri="img", parallel_trials=3)
    config = apply_overrides(load_config(), {"tuner.algorithm": "bayesian", "tuner.max_trials": 12})
    args = vertex_tuner_args(config, spec)
    assert args["tuner"]["algorithm"] == "bayesian" and args["tuner"]["max_trials"] == 12
    pools = args["ai_platform_tuning_args"]["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 2]
    assert args["remote_trials_working_dir"].endswith("/tuner-trials")
    assert vertex_tune_args(spec).num_parallel_trials == 3


def test_the_extension_components_accept_the_args():
    """The dicts plug into TFX's Vertex Trainer/Tuner components as they are (compile-time check)."""
    from tfx.extensions.google_cloud_ai_platform.trainer.component import Trainer
    from tfx.extensions.google_cloud_ai_platform.tuner.component import Tuner
    from tfx.types import channel_utils, standard_artifacts

    examples = channel_utils.as_channel([standard_artifacts.Examples()])
    config = _config(strategy="multi_worker", workers=2)
    trainer = Trainer(
        run_fn="modules.training.trainer.run_fn", examples=examples, custom_config=vertex_trainer_args(config, SPEC)
    )
    assert trainer.exec_properties["custom_config"]
    tuner = Tuner(
        tuner_fn="modules.training.tuner.tuner_fn",
        examples=examples,
        tune_args=vertex_tune_args(SPEC),
        custom_config=vertex_tuner_args(config, SPEC),
    )
    assert tuner.exec_properties["custom_config"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"project": ""}, "project"),
        ({"accelerator_type": "NVIDIA_TESLA_T4"}, "together"),
        ({"parallel_trials": 0}, "parallel_trials"),
    ],
)
def test_bad_vertex_specs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VertexSpec(**{"project": "p", "region": "r", "image_uri": "i", **kwargs})
