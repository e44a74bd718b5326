"""Serving stage: ``signatures`` (the exported SavedModel's signatures, Transform graph inside)."""
