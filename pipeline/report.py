"""What a run produced, read back from MLMD: execution states and key artifacts."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from typing import Any

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from modules.training.config import METRICS_FILE

# MLMD context types of TFX's orchestrators (tfx.dsl.compiler.constants), spelled out so
# that reading MLMD imports no TFX (tests/test_registry_integrity.py checks they agree).
PIPELINE_CONTEXT_TYPE = "pipeline"
PIPELINE_RUN_CONTEXT_TYPE = "pipeline_run"
NODE_CONTEXT_TYPE = "node"


@dataclasses.dataclass
class RunReport:
    run_id: str
    executions: dict[str, str]  # node id -> state name
    outputs: dict[str, list[metadata_store_pb2.Artifact]]  # artifact type -> artifacts
    metadata_path: str  # where MLMD is: the SQLite path or mysql://user@host:port/database
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
            # False: a registered version already held identical content (nothing was copied).
            registration["newly_registered"] = (
                props["newly_registered"].int_value == 1 if "newly_registered" in props else True
            )
            if "pushed_fingerprint" in props:
                registration["fingerprint"] = props["pushed_fingerprint"].string_value
        return registration

    @property
    def rows_set_aside(self) -> list[dict[str, Any]]:
        """Per Examples artifact the ExampleGen summarized: rows read, rows set aside, the dead letter."""
        from components.elwc_example_gen.summary import DEAD_LETTER_DIR, SUMMARY_FILE

        found, seen = [], set()
        for examples in self.outputs.get("Examples", []):
            props = examples.custom_properties
            if "bad_rows" not in props or examples.uri in seen:
                continue  # Not an ExampleGen output, or the same data republished (DataViewBinder).
            seen.add(examples.uri)
            dead_letter = os.path.join(examples.uri, DEAD_LETTER_DIR)
            with contextlib.suppress(OSError, ValueError):
                with open(os.path.join(examples.uri, SUMMARY_FILE)) as handle:
                    dead_letter = json.load(handle).get("dead_letter_uri") or dead_letter
            found.append(
                {
                    "bad_rows": props["bad_rows"].int_value,
                    "rows_read": props["rows_read"].int_value if "rows_read" in props else None,
                    "dead_letter_uri": dead_letter,
                }
            )
        return found

    @property
    def evaluation(self) -> dict[str, Any]:
        """The RankingEvaluator's report (candidate and baseline metrics, the gate, the verdict)."""
        from components.ranking_evaluator.executor import EVALUATION_FILE

        with open(os.path.join(self.artifact("ModelEvaluation").uri, EVALUATION_FILE)) as handle:
            return json.load(handle)


def open_store(metadata: str | metadata_store_pb2.ConnectionConfig) -> metadata_store.MetadataStore:
    """A SQLite path (opened read-only; it must exist) or a ConnectionConfig (MySQL)."""
    if isinstance(metadata, metadata_store_pb2.ConnectionConfig):
        return metadata_store.MetadataStore(metadata)
    metadata_path = metadata
    if not os.path.exists(metadata_path):
        raise FileNotFoundError(f"no MLMD database at '{metadata_path}'")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def _node_ids(store: metadata_store.MetadataStore, pipeline_name: str) -> dict[int, str]:
    """Execution id -> node id, from the ``node`` contexts (named ``<pipeline>.<node>``)."""
    node_ids = {}
    for context in store.get_contexts_by_type(NODE_CONTEXT_TYPE):
        prefix, _, node = context.name.partition(".")
        if prefix != pipeline_name:
            continue
        for execution in store.get_executions_by_context(context.id):
            node_ids[execution.id] = node
    return node_ids


def latest_run_report(metadata: str | metadata_store_pb2.ConnectionConfig) -> RunReport:
    """Report of the most recent pipeline run recorded in ``metadata`` (SQLite path or ConnectionConfig)."""
    from pipeline.metadata_connection import describe

    store = open_store(metadata)
    metadata_path = describe(metadata)
    runs = store.get_contexts_by_type(PIPELINE_RUN_CONTEXT_TYPE)
    if not runs:
        raise LookupError(f"no pipeline run recorded in '{metadata_path}'")
    run = max(runs, key=lambda context: (context.create_time_since_epoch, context.id))
    executions = store.get_executions_by_context(run.id)
    pipelines = [c for c in store.get_contexts_by_execution(executions[0].id) if c.type == PIPELINE_CONTEXT_TYPE]
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
