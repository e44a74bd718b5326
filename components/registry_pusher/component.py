"""RegistryPusher: registers the blessed SavedModel in a model registry."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts

from components.registry_pusher import executor
from components.registry_pusher.names import check_name
from components.registry_pusher.spec import RegistryPusherSpec


class RegistryPusher(base_component.BaseComponent):
    """Publishes ``model`` as the next version of ``model_name`` if ``model_blessing`` blessed it.

    ``backend`` ``local``: a TF Serving layout under ``registry_root``;
    ``mlflow``: the MLflow Model Registry at ``mlflow_tracking_uri`` (default:
    ``sqlite:///<registry_root>/mlflow.db``). An unblessed model is not registered;
    the PushedModel artifact then says ``pushed=0`` and why.
    """

    SPEC_CLASS = RegistryPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        registry_root: str,
        model_name: str,
        model_blessing: types.BaseChannel | None = None,
        infra_blessing: types.BaseChannel | None = None,
        model_evaluation: types.BaseChannel | None = None,
        model_run: types.BaseChannel | None = None,
        examples: types.BaseChannel | None = None,
        backend: str = "local",
        mlflow_tracking_uri: str = "",
        mlflow_experiment: str = "",
    ):
        check_name(model_name, "model_name")
        super().__init__(
            spec=RegistryPusherSpec(
                model=model,
                model_blessing=model_blessing,
                infra_blessing=infra_blessing,
                model_evaluation=model_evaluation,
                model_run=model_run,
                examples=examples,
                registry_root=registry_root,
                model_name=model_name,
                backend=backend,
                mlflow_tracking_uri=mlflow_tracking_uri,
                mlflow_experiment=mlflow_experiment,
                pushed_model=types.Channel(type=standard_artifacts.PushedModel),
            )
        )
