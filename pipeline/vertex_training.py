"""Vertex AI training for the same config: custom_config for TFX's Google Cloud Trainer / Tuner.

``ltr compile`` (KubeflowV2DagRunner) swaps the local Trainer and Tuner for
``tfx.extensions.google_cloud_ai_platform.Trainer`` / ``.Tuner`` and passes
these dicts as their ``custom_config`` (the Tuner also takes
``vertex_tune_args``). Worker pools follow Vertex's order: pool 0 the chief
(one replica), pool 1 the workers, pool 2 the parameter servers; Vertex then
sets ``TF_CONFIG`` on every replica and ``modules.training.trainer.run_fn`` builds the
configured strategy from it (the same code as the local multi-process run).

    strategy          pool 0 (chief)      pool 1 (workers)     pool 2 (ps)
    none / mirrored   1 (all its GPUs)    -                    -
    multi_worker      1                   training.workers-1   -
    parameter_server  1 (coordinator)     training.workers     training.parameter_servers
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tfx.extensions.google_cloud_ai_platform import constants as gcp_constants
from tfx.extensions.google_cloud_ai_platform.trainer import executor as trainer_executor
from tfx.extensions.google_cloud_ai_platform.tuner import executor as tuner_executor
from tfx.proto import tuner_pb2

from modules.training.config import TUNER_CONFIG_KEY
from pipeline.config import Config


@dataclasses.dataclass(frozen=True)
class VertexSpec:
    """Where and on what the Vertex jobs run (not part of the local config)."""

    project: str
    region: str
    image_uri: str  # a container holding this project (modules.*) and its lock
    machine_type: str = "n1-standard-8"
    accelerator_type: str | None = None  # e.g. "NVIDIA_TESLA_T4"; None: CPU only
    accelerator_count: int = 0
    ps_machine_type: str = "n1-standard-4"
    parallel_trials: int = 1  # Tuner: trials run at once (pool 1 gets parallel_trials - 1 replicas)

    def __post_init__(self):
        for name in ("project", "region", "image_uri"):
            if not getattr(self, name):
                raise ValueError(f"vertex: '{name}' must be set")
        if (self.accelerator_type is None) != (self.accelerator_count == 0):
            raise ValueError("vertex: set accelerator_type and accelerator_count > 0 together, or neither")
        if self.parallel_trials < 1:
            raise ValueError("vertex: parallel_trials must be >= 1")


def _pool(spec: VertexSpec, replicas: int, machine_type: str, accelerators: bool) -> dict[str, Any]:
    machine: dict[str, Any] = {"machine_type": machine_type}
    if accelerators and spec.accelerator_type:
        machine["accelerator_type"] = spec.accelerator_type
        machine["accelerator_count"] = spec.accelerator_count
    # TFX replaces container_spec.command with its own executor entry point.
    return {"machine_spec": machine, "replica_count": replicas, "container_spec": {"image_uri": spec.image_uri}}


def worker_pool_specs(config: Config, spec: VertexSpec) -> list[dict[str, Any]]:
    training = config.training
    chief = _pool(spec, 1, spec.machine_type, accelerators=True)
    if training.strategy in ("none", "mirrored"):
        return [chief]
    if training.strategy == "multi_worker":
        if training.workers == 1:
            return [chief]
        return [chief, _pool(spec, training.workers - 1, spec.machine_type, accelerators=True)]
    if training.strategy == "parameter_server":
        return [
            chief,
            _pool(spec, training.workers, spec.machine_type, accelerators=True),
            _pool(spec, training.parameter_servers, spec.ps_machine_type, accelerators=False),
        ]
    raise ValueError(f"training.strategy '{training.strategy}' has no Vertex worker pools")


def _vertex_keys(spec: VertexSpec) -> dict[str, Any]:
    return {gcp_constants.ENABLE_VERTEX_KEY: True, gcp_constants.VERTEX_REGION_KEY: spec.region}


def vertex_trainer_args(config: Config, spec: VertexSpec) -> dict[str, Any]:
    """``custom_config`` for ``tfx.extensions.google_cloud_ai_platform.Trainer``.

    Holds the ``training`` section (what ``run_fn`` reads) plus the Vertex
    CustomJob: ``ai_platform_training_args`` with the worker pools,
    ``ai_platform_enable_vertex`` and ``ai_platform_vertex_region``.
    """
    return {
        **dataclasses.asdict(config.training),
        **_vertex_keys(spec),
        trainer_executor.TRAINING_ARGS_KEY: {
            "project": spec.project,
            "job_spec": {"worker_pool_specs": worker_pool_specs(config, spec)},
        },
    }


def vertex_tuner_args(config: Config, spec: VertexSpec) -> dict[str, Any]:
    """``custom_config`` for ``tfx.extensions.google_cloud_ai_platform.Tuner``.

    Trials run as remote KerasTuner workers in one Vertex CustomJob: pool 0 is
    the oracle's chief (it also runs trials), pool 1 holds the other parallel
    trial workers. Each trial trains under the default strategy on its replica.
    """
    pools = [_pool(spec, 1, spec.machine_type, accelerators=True)]
    if spec.parallel_trials > 1:
        pools.append(_pool(spec, spec.parallel_trials - 1, spec.machine_type, accelerators=True))
    return {
        **dataclasses.asdict(config.training),
        TUNER_CONFIG_KEY: dataclasses.asdict(config.tuner),
        **_vertex_keys(spec),
        tuner_executor.TUNING_ARGS_KEY: {"project": spec.project, "job_spec": {"worker_pool_specs": pools}},
        tuner_executor.REMOTE_TRIALS_WORKING_DIR_KEY: f"{config.pipeline_root.rstrip('/')}/tuner-trials",
    }


def vertex_tune_args(spec: VertexSpec) -> tuner_pb2.TuneArgs:
    """``tune_args`` for the Vertex Tuner (the number of trials run in parallel)."""
    return tuner_pb2.TuneArgs(num_parallel_trials=spec.parallel_trials)
