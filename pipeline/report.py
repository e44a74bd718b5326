"""What a run produced, read back from MLMD: execution states and key artifacts."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.compiler import constants

from modules.training.config import METRICS_FILE


@dataclasses.dataclass
class RunReport:
    run_id: str
    executions: dict[str, str]  # node id -> state name
    outputs: dict[str, list[metadata_store_pb2.Artifact]]  # artifact type -> artifacts
    metadata_path: str
    inputs: dict[str, dict[str, list[metadata_store_pb2.Artifact]]]  # node id -> artifact type -> artifacts

    def artifact(self, type_name: str) -> metadata_store_pb2.Artifact:
        found = self.outputs.get(type_name)
        if not found:
            raise LookupError(f"the run produced no {type_name} artifact")
        return found[-1]

    @property
    def eval_metrics(self) -> dict[str, float]:
        model_run = self.artifact("ModelRun")
        with open(os.path.join(model_run.uri, METRICS_FILE)) as handle:
            return json.load(handle)["eval"]

    @property
    def registration(self) -> dict[str, Any]:
        """What the Pusher did: ``pushed`` and ``reason`` always; name, version, path if pushed."""
        pushed = self.artifact("PushedModel")
        props = pushed.custom_properties
        done = props["pushed"].int_value == 1 if "pushed" in props else "pushed_version" in props
        registration = {
            "pushed": done,
            "reason": props["pushed_reason"].string_value if "pushed_reason" in props else "",
            "backend": props["registry_backend"].string_value if "registry_backend" in props else "",
            "model_name": props["model_name"].string_value,
        }
        if done:
            registration["version"] = props["pushed_version"].int_value
            registration["path"] = props["pushed_destination"].string_value
        return registration

    @property
    def evaluation(self) -> dict[str, Any]:
        """The RankingEvaluator's report (candidate and baseline metrics, the gate, the verdict)."""
        from components.ranking_evaluator.executor import EVALUATION_FILE

        with open(os.path.join(self.artifact("ModelEvaluation").uri, EVALUATION_FILE)) as handle:
            return json.load(handle)


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
    if not os.path.exists(metadata_path):
        raise FileNotFoundError(f"no MLMD database at '{metadata_path}'")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def _node_ids(store: metadata_store.MetadataStore, pipeline_name: str) -> dict[int, str]:
    """Execution id -> node id, from the ``node`` contexts (named ``<pipeline>.<node>``)."""
    node_ids = {}
    for context in store.get_contexts_by_type(constants.NODE_CONTEXT_TYPE_NAME):
        prefix, _, node = context.name.partition(".")
        if prefix != pipeline_name:
            continue
        for execution in store.get_executions_by_context(context.id):
            node_ids[execution.id] = node
    return node_ids


def latest_run_report(metadata_path: str) -> RunReport:
    """Report of the most recent pipeline run recorded in ``metadata_path``."""
    store = open_store(metadata_path)
    runs = store.get_contexts_by_type(constants.PIPELINE_RUN_CONTEXT_TYPE_NAME)
    if not runs:
        raise LookupError(f"no pipeline run recorded in '{metadata_path}'")
    run = max(runs, key=lambda context: (context.create_time_since_epoch, context.id))
    executions = store.get_executions_by_context(run.id)
    pipelines = [
        c for c in store.get_contexts_by_execution(executions[0].id) if c.type == constants.PIPELINE_CONTEXT_TYPE_NAME
    ]
    node_ids = _node_ids(store, pipelines[0].name) if pipelines else {}
    states = {
        node_ids.get(e.id, str(e.id)): metadata_store_pb2.Execution.State.Name(e.last_known_state) for e in executions
    }
    events = store.get_events_by_execution_ids([e.id for e in executions])
    artifacts = {a.id: a for a in store.get_artifacts_by_id(sorted({e.artifact_id for e in events}))}
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    outputs: dict[str, list[metadata_store_pb2.Artifact]] = {}
    inputs: dict[str, dict[str, list[metadata_store_pb2.Artifact]]] = {}
    for event in sorted(events, key=lambda e: e.artifact_id):
        artifact = artifacts[event.artifact_id]
        type_name = type_names[artifact.type_id]
        if event.type == metadata_store_pb2.Event.OUTPUT:
            outputs.setdefault(type_name, []).append(artifact)
        elif event.type == metadata_store_pb2.Event.INPUT:
            node = node_ids.get(event.execution_id, str(event.execution_id))
            inputs.setdefault(node, {}).setdefault(type_name, []).append(artifact)
    return RunReport(run.name, states, outputs, metadata_path, inputs)
