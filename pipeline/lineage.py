"""``ltr lineage VERSION``: from a registered model version back to its data, through MLMD.

The registry records the MLMD id of the Model artifact it published; from there
the events in MLMD lead to the Pusher that registered it (downstream) and, going
upstream, to the Trainer, Transform, the Tuner or Importer that produced the
hyperparameters, the schema, and the Examples with their spans, versions and
input fingerprints.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from modules.propensity import PROPENSITIES_FILE
from pipeline.report import NODE_CONTEXT_TYPE, open_store

_INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
HYPERPARAMETERS_FILE = "best_hyperparameters.txt"


def _value(value: metadata_store_pb2.Value) -> Any:
    kind = value.WhichOneof("value")
    if kind == "proto_value":
        return str(value.proto_value)
    if kind == "struct_value":
        from google.protobuf import json_format

        return json_format.MessageToDict(value.struct_value)
    return getattr(value, kind) if kind else None


def _properties(node) -> dict[str, Any]:
    props = {k: _value(v) for k, v in node.properties.items()}
    props.update({k: _value(v) for k, v in node.custom_properties.items()})
    return props


@dataclasses.dataclass
class ArtifactInfo:
    id: int
    type: str
    uri: str
    properties: dict[str, Any]
    producer: int | None  # execution id


@dataclasses.dataclass
class ExecutionInfo:
    id: int
    type: str
    node: str
    state: str
    properties: dict[str, Any]
    inputs: dict[str, list[int]]  # input key -> artifact ids
    outputs: dict[str, list[int]]


class LineageGraph:
    """Executions and artifacts upstream of one artifact (and the executions that read it)."""

    def __init__(self, store: metadata_store.MetadataStore):
        self.store = store
        self.artifacts: dict[int, ArtifactInfo] = {}
        self.executions: dict[int, ExecutionInfo] = {}
        self._artifact_types = {t.id: t.name for t in store.get_artifact_types()}
        self._execution_types = {t.id: t.name for t in store.get_execution_types()}

    def _node_name(self, execution_id: int) -> str:
        for context in self.store.get_contexts_by_execution(execution_id):
            if self.store.get_context_types_by_id([context.type_id])[0].name == NODE_CONTEXT_TYPE:
                return context.name.partition(".")[2] or context.name
        return ""

    def _execution(self, execution_id: int) -> ExecutionInfo:
        if execution_id not in self.executions:
            (execution,) = self.store.get_executions_by_id([execution_id])
            info = ExecutionInfo(
                id=execution.id,
                type=self._execution_types.get(execution.type_id, ""),
                node=self._node_name(execution.id),
                state=metadata_store_pb2.Execution.State.Name(execution.last_known_state),
                properties=_properties(execution),
                inputs={},
                outputs={},
            )
            for event in self.store.get_events_by_execution_ids([execution_id]):
                key = event.path.steps[0].key if event.path.steps else ""
                side = info.inputs if event.type in _INPUT_EVENTS else info.outputs
                side.setdefault(key, []).append(event.artifact_id)
            self.executions[execution_id] = info
        return self.executions[execution_id]

    def _artifact(self, artifact_id: int) -> ArtifactInfo:
        if artifact_id not in self.artifacts:
            found = self.store.get_artifacts_by_id([artifact_id])
            if not found:
                raise LookupError(f"MLMD has no artifact {artifact_id}")
            artifact = found[0]
            events = self.store.get_events_by_artifact_ids([artifact_id])
            producers = [e.execution_id for e in events if e.type in _OUTPUT_EVENTS]
            self.artifacts[artifact_id] = ArtifactInfo(
                id=artifact.id,
                type=self._artifact_types.get(artifact.type_id, ""),
                uri=artifact.uri,
                properties=_properties(artifact),
                producer=producers[0] if producers else None,
            )
        return self.artifacts[artifact_id]

    def trace_upstream(self, artifact_id: int) -> None:
        pending = [artifact_id]
        while pending:
            artifact = self._artifact(pending.pop())
            if artifact.producer is None or artifact.producer in self.executions:
                continue
            execution = self._execution(artifact.producer)
            for ids in execution.inputs.values():
                pending.extend(i for i in ids if i not in self.artifacts)

    def consumers(self, artifact_id: int) -> list[ExecutionInfo]:
        events = self.store.get_events_by_artifact_ids([artifact_id])
        return [self._execution(e.execution_id) for e in events if e.type in _INPUT_EVENTS]

    def producer_of(self, artifact_id: int) -> ExecutionInfo | None:
        producer = self._artifact(artifact_id).producer
        return self.executions.get(producer) if producer is not None else None

    def by_type(self, type_suffix: str) -> list[ArtifactInfo]:
        return sorted((a for a in self.artifacts.values() if a.type == type_suffix), key=lambda a: a.id)


def _find_push(graph: LineageGraph, model_id: int, version: int, backend: str, model_name: str):
    """The Pusher execution that registered ``model_id`` as ``version``, and its PushedModel id."""
    for execution in graph.consumers(model_id):
        for pushed_id in execution.outputs.get("pushed_model", []):
            props = graph._artifact(pushed_id).properties
            if (
                props.get("pushed") == 1
                and props.get("pushed_version") == version
                and props.get("registry_backend", "local") == backend
                and props.get("model_name") == model_name
            ):
                return execution, pushed_id
    return None, None


def _execution_summary(execution: ExecutionInfo | None, keys: tuple[str, ...] = ()) -> dict[str, Any] | None:
    if execution is None:
        return None
    summary = {"execution_id": execution.id, "node": execution.node, "type": execution.type, "state": execution.state}
    for key in keys:
        if key in execution.properties:
            summary[key] = execution.properties[key]
    return summary


def _read_json(path: str) -> Any:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _hyperparameters(graph: LineageGraph, trainer: ExecutionInfo) -> dict[str, Any]:
    ids = trainer.inputs.get("hyperparameters", [])
    if not ids:
        return {"source": "defaults (no Tuner and no imported hyperparameters)", "values": None}
    artifact = graph._artifact(ids[0])
    producer = graph.producer_of(artifact.id)
    source = "imported" if producer is None or "Importer" in producer.type else "tuned"
    values = _read_json(os.path.join(artifact.uri, HYPERPARAMETERS_FILE))
    if isinstance(values, dict) and "values" in values:  # KerasTuner HyperParameters.get_config()
        values = values["values"]
    return {
        "source": source,
        "artifact_id": artifact.id,
        "uri": artifact.uri,
        "producer": _execution_summary(producer),
        "values": values,
    }


def _position_bias(graph: LineageGraph, trainer: ExecutionInfo, training_summary: dict | None) -> dict[str, Any]:
    """training.position_bias as the Trainer ran it, and (ipw) the Propensities artifact it read."""
    summary = training_summary or {}
    found: dict[str, Any] = {"mode": summary.get("position_bias", "none")}
    for key in ("ipw_max_weight", "bias_features"):
        if key in summary:
            found[key] = summary[key]
    for artifact_id in trainer.inputs.get("propensities", []):
        artifact = graph._artifact(artifact_id)
        values = _read_json(os.path.join(artifact.uri, PROPENSITIES_FILE)) or {}
        found["propensities"] = {
            "artifact_id": artifact.id,
            "uri": artifact.uri,
            "producer": _execution_summary(graph.producer_of(artifact.id)),
            "values": values.get("propensity") or summary.get("propensities"),
            "diagnostics": {k: v for k, v in (values.get("diagnostics") or {}).items() if not isinstance(v, list)},
        }
    return found


def _examples(graph: LineageGraph) -> list[dict[str, Any]]:
    found = []
    for artifact in graph.by_type("Examples"):
        producer = graph.producer_of(artifact.id)
        props = artifact.properties
        found.append(
            {
                "artifact_id": artifact.id,
                "uri": artifact.uri,
                "span": props.get("span"),
                "version": props.get("version"),
                "split_names": props.get("split_names"),
                "input_fingerprint": props.get("input_fingerprint")
                or (producer.properties.get("input_fingerprint") if producer else None),
                "producer": _execution_summary(producer),
            }
        )
    return found


def lineage_of(
    metadata, model_artifact_id: int, version: int, backend: str = "local", model_name: str = "ranker"
) -> dict[str, Any]:
    """Everything MLMD knows about how the Model artifact ``model_artifact_id`` was made.

    ``metadata``: a SQLite path or an MLMD ``ConnectionConfig`` (MySQL).
    """
    graph = LineageGraph(open_store(metadata))
    graph.trace_upstream(model_artifact_id)
    model = graph._artifact(model_artifact_id)
    if model.type != "Model":
        raise LookupError(f"MLMD artifact {model_artifact_id} is a {model.type}, not a Model")
    trainer = graph.producer_of(model_artifact_id)
    if trainer is None:
        raise LookupError(f"MLMD records no execution that produced model artifact {model_artifact_id}")
    transform = None
    for graph_id in trainer.inputs.get("transform_graph", []):
        transform = graph.producer_of(graph_id)
    schemas = graph.by_type("Schema")
    model_run = next((graph._artifact(i) for i in trainer.outputs.get("model_run", [])), None)
    training_summary = _read_json(os.path.join(model_run.uri, "metrics.json")) if model_run else None
    pusher, pushed_model_id = _find_push(graph, model_artifact_id, version, backend, model_name)
    pusher_summary = _execution_summary(pusher)
    if pusher_summary:
        pusher_summary["pushed_model_artifact_id"] = pushed_model_id
    return {
        "model": {"artifact_id": model.id, "uri": model.uri},
        "pusher": pusher_summary,
        "trainer": _execution_summary(trainer, ("train_args", "eval_args", "custom_config")),
        "transform": _execution_summary(transform),
        "hyperparameters": _hyperparameters(graph, trainer),
        "trained_with": (training_summary or {}).get("hyperparameters"),
        "position_bias": _position_bias(graph, trainer, training_summary),
        "schema": [
            {"artifact_id": s.id, "uri": s.uri, "producer": _execution_summary(graph.producer_of(s.id))}
            for s in schemas
        ],
        "examples": _examples(graph),
        "executions": [_execution_summary(e) for e in sorted(graph.executions.values(), key=lambda e: e.id)],
    }


def model_artifact_id_of(registered) -> int:
    raw = registered.metadata.get("model_artifact_id")
    if raw in (None, ""):
        raise LookupError(
            f"registered version {registered.version} of '{registered.model_name}' records no MLMD model artifact id"
        )
    return int(raw)


def _bias_details(bias: dict[str, Any]) -> str:
    if bias["mode"] == "ipw":
        return f" (weights 1/propensity, clipped at {bias.get('ipw_max_weight')})"
    if bias["mode"] == "bias_tower":
        return f" (training-only tower on position + {bias.get('bias_features') or []})"
    return ""


def format_lineage(model_name: str, version: int, lineage: dict[str, Any]) -> str:
    def execution(e):
        return f"{e['node'] or e['type']} (execution {e['execution_id']}, {e['state']})" if e else "not found in MLMD"

    lines = [
        f"{model_name} version {version}: model artifact {lineage['model']['artifact_id']} ({lineage['model']['uri']})"
    ]
    lines.append(f"  Pusher:     {execution(lineage['pusher'])}")
    lines.append(f"  Trainer:    {execution(lineage['trainer'])}")
    lines.append(f"  Transform:  {execution(lineage['transform'])}")
    hp = lineage["hyperparameters"]
    lines.append(
        f"  Hyperparameters ({hp['source']}"
        + (f", artifact {hp['artifact_id']}" if "artifact_id" in hp else "")
        + (f", by {execution(hp['producer'])}" if hp.get("producer") else "")
        + "):"
    )
    values = hp.get("values") or lineage.get("trained_with") or {}
    for key in sorted(values):
        lines.append(f"    {key} = {values[key]}")
    bias = lineage.get("position_bias") or {"mode": "none"}
    lines.append(f"  Position bias: {bias['mode']}" + _bias_details(bias))
    propensities = bias.get("propensities")
    if propensities:
        lines.append(
            f"    propensities: artifact {propensities['artifact_id']} by {execution(propensities['producer'])}"
        )
        lines.append(f"      {propensities['uri']}")
        values = propensities.get("values") or []
        lines.append("      position: " + " ".join(f"{k}={v:.3f}" for k, v in enumerate(values[:10], start=1)))
    for schema in lineage["schema"]:
        lines.append(
            f"  Schema:     artifact {schema['artifact_id']} {schema['uri']} by {execution(schema['producer'])}"
        )
    lines.append("  Examples:")
    for ex in lineage["examples"]:
        lines.append(
            f"    artifact {ex['artifact_id']}: span {ex['span']}, version {ex['version']}, "
            f"splits {ex['split_names']}, by {execution(ex['producer'])}"
        )
        if ex["input_fingerprint"]:
            lines.append(f"      input fingerprint: {ex['input_fingerprint']}")
        lines.append(f"      {ex['uri']}")
    return "\n".join(lines)
