"""RegistryPusher: registers the trained SavedModel in a model registry."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts

from components.registry_pusher import executor
from components.registry_pusher.spec import RegistryPusherSpec


class RegistryPusher(base_component.BaseComponent):
    """Publishes ``model`` as the next version of ``model_name`` under ``registry_root``."""

    SPEC_CLASS = RegistryPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        registry_root: str,
        model_name: str,
        model_run: types.BaseChannel | None = None,
    ):
        super().__init__(
            spec=RegistryPusherSpec(
                model=model,
                model_run=model_run,
                registry_root=registry_root,
                model_name=model_name,
                pushed_model=types.Channel(type=standard_artifacts.PushedModel),
            )
        )
