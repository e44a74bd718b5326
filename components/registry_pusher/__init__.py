"""Pusher that registers SavedModels in a versioned model registry.

The registry library (``registry``, ``backends``, ``names``) imports neither TFX nor
TensorFlow, so the query commands (``ltr registry``, ``ltr lineage``) stay light; the
TFX component is imported only when it is asked for.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RegistryPusher"]


def __getattr__(name: str) -> Any:
    if name == "RegistryPusher":
        from components.registry_pusher.component import RegistryPusher

        return RegistryPusher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
