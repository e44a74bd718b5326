"""Serving check: the candidate SavedModel answers real requests in a plain TensorFlow process."""

from components.serving_check.component import ServingCheck

__all__ = ["ServingCheck"]
