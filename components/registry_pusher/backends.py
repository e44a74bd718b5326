"""Choosing a registry backend by name (``registry.backend`` in the config)."""

from __future__ import annotations

import os

from components.registry_pusher.registry import LocalRegistry

BACKENDS = ("local", "mlflow")


def open_registry(backend: str, registry_root: str, mlflow_tracking_uri: str = "", mlflow_experiment: str = ""):
    """A ``LocalRegistry`` or ``MlflowRegistry``; both offer register / versions / get / set_serving."""
    if backend == "local":
        return LocalRegistry(registry_root)
    if backend == "mlflow":
        from components.registry_pusher.mlflow_registry import MlflowRegistry, default_tracking_uri

        return MlflowRegistry(
            mlflow_tracking_uri or default_tracking_uri(registry_root),
            experiment=mlflow_experiment or "ltr-registry",
            artifact_root=os.path.join(registry_root, "mlflow-artifacts"),
        )
    raise ValueError(f"unknown registry backend '{backend}'; known: {', '.join(BACKENDS)}")
