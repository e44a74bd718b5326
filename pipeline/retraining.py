"""Retraining without the Tuner: where the hyperparameters come from, checked before running.

With ``tuner.enabled: false`` the Trainer takes hyperparameters from an
Importer (``tuner.hyperparameters_uri``) or, without a URI, from the latest
Tuner output of this pipeline in MLMD. This module fails fast, before any
component runs, when neither exists, instead of training with defaults.
"""

from __future__ import annotations

import os

from pipeline.config import Config

HYPERPARAMETERS_FILE = "best_hyperparameters.txt"
_HYPERPARAMETERS_TYPE = "HyperParameters"


class RetrainingError(RuntimeError):
    pass


def earlier_tuner_results(metadata, pipeline_name: str, tuner_id: str) -> list[str]:
    """URIs of the live HyperParameters artifacts that the pipeline's Tuner produced, oldest first.

    ``metadata``: a SQLite path or an MLMD ``ConnectionConfig`` (MySQL).
    """
    if isinstance(metadata, str) and not os.path.exists(metadata):
        return []
    from ml_metadata.proto import metadata_store_pb2
    from tfx.dsl.compiler import constants

    from pipeline.report import open_store

    store = open_store(metadata)
    context = store.get_context_by_type_and_name(constants.NODE_CONTEXT_TYPE_NAME, f"{pipeline_name}.{tuner_id}")
    if context is None:
        return []
    artifacts = [
        a
        for a in store.get_artifacts_by_context(context.id)
        if a.state == metadata_store_pb2.Artifact.LIVE
        and store.get_artifact_types_by_id([a.type_id])[0].name == _HYPERPARAMETERS_TYPE
    ]
    return [a.uri for a in sorted(artifacts, key=lambda a: a.id)]


def check_hyperparameter_source(config: Config, tuner_id: str) -> str:
    """Describes where retraining takes its hyperparameters from; raises if nowhere."""
    import tensorflow as tf  # Deferred: reads gs:// URIs too, but costs seconds to import.

    uri = config.tuner.hyperparameters_uri
    if uri:
        if not tf.io.gfile.exists(os.path.join(uri, HYPERPARAMETERS_FILE)):
            raise RetrainingError(
                f"tuning is off and tuner.hyperparameters_uri '{uri}' holds no {HYPERPARAMETERS_FILE} "
                "(point it at a Tuner's best_hyperparameters artifact folder)"
            )
        return f"imported from {uri}"
    from pipeline.metadata_connection import describe, metadata_target

    target = metadata_target(config)
    found = earlier_tuner_results(target, config.pipeline_name, tuner_id)
    if not found:
        raise RetrainingError(
            f"tuning is off and no earlier Tuner result of pipeline '{config.pipeline_name}' exists in "
            f"MLMD ({describe(target)}): run once with the tuner on, or give --hyperparameters URI"
        )
    return f"latest Tuner result in MLMD ({found[-1]})"
