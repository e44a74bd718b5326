"""Pusher that registers SavedModels in a versioned model registry."""

from components.registry_pusher.component import RegistryPusher

__all__ = ["RegistryPusher"]
