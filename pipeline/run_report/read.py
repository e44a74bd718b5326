"""Step 1 of the run report: what one pipeline run recorded, read through MLMD and its artifacts.

Nothing here recomputes a number from data: every value comes from an MLMD property or
from a file a component wrote into its output artifact (the Tuner's ``tuner_results.json``,
the Trainer's ``metrics.json`` and TensorBoard event files, the RankingEvaluator's
``evaluation.json``, ElwcExampleGen's ``summary.json``). What a run did not produce, or
what cannot be read, is listed in ``RunData.notes`` and said on the page.

No TensorFlow and no TFX executor code is imported: the event files are parsed with
TensorBoard's own protos (``tensorboard.compat.proto``), so ``ltr report`` starts in
about a second.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import struct
from collections.abc import Iterator
from typing import Any

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.compiler import constants  # string constants only: imports no TensorFlow

from modules.training.config import METRICS_FILE, TUNER_CONFIG_KEY
from pipeline.lineage import HYPERPARAMETERS_FILE, lineage_of
from pipeline.report import open_store

# File names written by the components (kept here so that reading them imports no
# component code; tests/test_run_report.py checks they match the writers' constants).
TUNER_RESULTS_FILE = "tuner_results.json"  # tfx.components.tuner.executor
EVALUATION_FILE = "evaluation.json"  # components.ranking_evaluator.executor.EVALUATION_FILE
SUMMARY_FILE = "summary.json"  # components.elwc_example_gen.summary.SUMMARY_FILE
TENSORBOARD_DIR = "logs"  # modules.training.trainer.LOGS_DIR: Keras' TensorBoard callback writes train/ and validation/
TUNER_OBJECTIVE = "val_ndcg_10"  # modules.training.model.VAL_NDCG_METRIC: what modules/training/tuner.py maximises

_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
_INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)


@dataclasses.dataclass
class Execution:
    id: int
    node: str
    type: str
    state: str
    properties: dict[str, Any]
    inputs: dict[str, list[metadata_store_pb2.Artifact]]  # input key -> artifacts
    outputs: dict[str, list[metadata_store_pb2.Artifact]]  # output key -> artifacts


@dataclasses.dataclass
class TunerData:
    trials: list[dict[str, Any]]  # {"trial_id", "score", **hyperparameter values}, in trial order
    objective: str
    settings: dict[str, Any]  # the config's ``tuner`` section as the Tuner received it
    best_hyperparameters: dict[str, Any] | None
    source: str  # where the trials come from (this run, or the Tuner run whose result was reused)
    uri: str


@dataclasses.dataclass
class TrainingData:
    metrics: dict[str, Any]  # metrics.json
    curves: dict[str, dict[str, list[tuple[int, float]]]]  # "train"/"validation" -> tag -> [(epoch, value)]
    uri: str


@dataclasses.dataclass
class ExamplesData:
    artifact_id: int
    uri: str
    span: int | None
    version: int | None
    summary: dict[str, Any] | None
    used_by: list[str]  # nodes of this run that read (or wrote) it


@dataclasses.dataclass
class RunData:
    run_id: str
    pipeline_name: str
    metadata_path: str
    created_ms: int
    executions: list[Execution]
    tuner: TunerData | None = None
    training: TrainingData | None = None
    evaluation: dict[str, Any] | None = None
    examples: list[ExamplesData] = dataclasses.field(default_factory=list)
    registration: dict[str, Any] | None = None
    lineage: dict[str, Any] | None = None
    lineage_subject: str = ""
    notes: list[str] = dataclasses.field(default_factory=list)  # what is missing, and why


def _value(value: metadata_store_pb2.Value) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in ("int_value", "double_value", "string_value", "bool_value") else None


def _props(node) -> dict[str, Any]:
    found = {k: _value(v) for k, v in node.properties.items()}
    found.update({k: _value(v) for k, v in node.custom_properties.items()})
    return found


def _read_json(path: str) -> Any:
    with open(path) as handle:
        return json.load(handle)


class RunReader:
    """The executions of one pipeline run with their input and output artifacts."""

    def __init__(self, store: metadata_store.MetadataStore, run: metadata_store_pb2.Context):
        self.store = store
        self.run = run
        self._artifact_types = {t.id: t.name for t in store.get_artifact_types()}
        self._execution_types = {t.id: t.name for t in store.get_execution_types()}
        self.executions = self._executions(store.get_executions_by_context(run.id))

    def _node_name(self, execution: metadata_store_pb2.Execution) -> str:
        for context in self.store.get_contexts_by_execution(execution.id):
            if context.type == constants.NODE_CONTEXT_TYPE_NAME:  # named "<pipeline>.<node>"
                return context.name.partition(".")[2] or context.name
        return self._execution_types.get(execution.type_id, str(execution.id))

    def _executions(self, executions) -> list[Execution]:
        if not executions:
            return []
        events = self.store.get_events_by_execution_ids([e.id for e in executions])
        artifacts = {a.id: a for a in self.store.get_artifacts_by_id(sorted({e.artifact_id for e in events}))}
        found = {
            e.id: Execution(
                id=e.id,
                node=self._node_name(e),
                type=self._execution_types.get(e.type_id, ""),
                state=metadata_store_pb2.Execution.State.Name(e.last_known_state),
                properties=_props(e),
                inputs={},
                outputs={},
            )
            for e in executions
        }
        for event in sorted(events, key=lambda e: e.artifact_id):
            key = event.path.steps[0].key if event.path.steps else ""
            side = (
                found[event.execution_id].inputs if event.type in _INPUT_EVENTS else found[event.execution_id].outputs
            )
            side.setdefault(key, []).append(artifacts[event.artifact_id])
        return sorted(found.values(), key=lambda e: e.id)

    def type_name(self, artifact: metadata_store_pb2.Artifact) -> str:
        return self._artifact_types.get(artifact.type_id, "")

    def producing(self, type_name: str) -> tuple[Execution, metadata_store_pb2.Artifact] | tuple[None, None]:
        """The last execution of this run that output an artifact of ``type_name``, and the artifact."""
        for execution in reversed(self.executions):
            for artifacts in execution.outputs.values():
                for artifact in reversed(artifacts):
                    if self.type_name(artifact) == type_name:
                        return execution, artifact
        return None, None

    def consuming(self, type_name: str) -> list[tuple[Execution, metadata_store_pb2.Artifact]]:
        return [
            (execution, artifact)
            for execution in self.executions
            for artifacts in execution.inputs.values()
            for artifact in artifacts
            if self.type_name(artifact) == type_name
        ]

    def producer_elsewhere(self, artifact_id: int) -> tuple[metadata_store_pb2.Execution | None, str]:
        """The execution (of any run) that produced ``artifact_id``, and that run's id."""
        events = self.store.get_events_by_artifact_ids([artifact_id])
        producers = [e.execution_id for e in events if e.type in _OUTPUT_EVENTS]
        if not producers:
            return None, ""
        (execution,) = self.store.get_executions_by_id([producers[0]])
        run_ids = [
            c.name
            for c in self.store.get_contexts_by_execution(execution.id)
            if c.type == constants.PIPELINE_RUN_CONTEXT_TYPE_NAME
        ]
        return execution, (run_ids[0] if run_ids else "")


def find_run(store: metadata_store.MetadataStore, run_id: str | None) -> metadata_store_pb2.Context:
    runs = store.get_contexts_by_type(constants.PIPELINE_RUN_CONTEXT_TYPE_NAME)
    if not runs:
        raise LookupError("MLMD records no pipeline run")
    if run_id is None:
        return max(runs, key=lambda context: (context.create_time_since_epoch, context.id))
    for run in runs:
        if run.name == run_id:
            return run
    latest = sorted(runs, key=lambda context: (context.create_time_since_epoch, context.id))[-5:]
    raise LookupError(f"MLMD records no pipeline run '{run_id}'; the latest are: {', '.join(r.name for r in latest)}")


# ---------------------------------------------------------------- sections


def _best_values(artifact) -> dict[str, Any] | None:
    try:
        values = _read_json(os.path.join(artifact.uri, HYPERPARAMETERS_FILE))
    except (OSError, ValueError):
        return None
    return values.get("values") if isinstance(values, dict) and "values" in values else values


def _tuner(reader: RunReader, data: RunData) -> None:
    execution, results = reader.producing("TunerResults")
    if results is not None:
        source = "this run's Tuner"
        properties = execution.properties
        best = next((a for e, a in [reader.producing("HyperParameters")] if e is execution), None)
    else:
        # Retraining: the Trainer's hyperparameters came from an earlier Tuner (or an Importer).
        consumed = [a for e, a in reader.consuming("HyperParameters") if e.outputs.get("model")]
        if not consumed:
            data.notes.append("Tuner: this run has no Tuner and its Trainer read no HyperParameters artifact.")
            return
        best = consumed[0]
        producer, run_id = reader.producer_elsewhere(best.id)
        events = reader.store.get_events_by_execution_ids([producer.id]) if producer is not None else []
        outputs = reader.store.get_artifacts_by_id([e.artifact_id for e in events if e.type in _OUTPUT_EVENTS])
        results = next((a for a in outputs if reader.type_name(a) == "TunerResults"), None)
        if results is None:
            data.notes.append(
                f"Tuner: this run did not tune; its hyperparameters (artifact {best.id}, {best.uri}) were "
                "imported, with no trials to show."
            )
            return
        source = f"the Tuner of run {run_id or '?'} (execution {producer.id}): this run reused its best hyperparameters"
        properties = _props(producer)
    path = os.path.join(results.uri, TUNER_RESULTS_FILE)
    try:
        trials = _read_json(path)
    except (OSError, ValueError) as error:
        data.notes.append(f"Tuner: cannot read {path}: {error}")
        return
    try:
        config = json.loads(properties.get("custom_config") or "{}") or {}
    except ValueError:
        config = {}
    settings = dict(config.get(TUNER_CONFIG_KEY) or {})
    if "max_trials" in properties:  # RankingTuner's own execution parameter wins over the config
        settings["max_trials"] = properties["max_trials"]

    def order(trial):
        trial_id = str(trial.get("trial_id", ""))
        return (0, int(trial_id), "") if trial_id.isdigit() else (1, 0, trial_id)

    data.tuner = TunerData(
        sorted(trials, key=order), TUNER_OBJECTIVE, settings, _best_values(best) if best else None, source, results.uri
    )


def _masked_crc32c(data: bytes) -> int:
    import google_crc32c  # C implementation (in the lock through google-cloud-storage)

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecords(path: str) -> Iterator[bytes]:
    """The records of an uncompressed TFRecord file, each CRC-checked; a damaged file raises ``ValueError``.

    (TensorBoard's TensorFlow-free reader would do, but checks CRC32C in pure Python;
    google_crc32c does it in C.)
    """
    with open(path, "rb") as handle:
        while header := handle.read(12):
            if len(header) < 12:
                raise ValueError(f"{path}: truncated record header")
            length, header_crc = struct.unpack("<QI", header)
            if _masked_crc32c(header[:8]) != header_crc:
                raise ValueError(f"{path}: corrupt record header")
            data, footer = handle.read(length), handle.read(4)
            if len(data) < length or len(footer) < 4:
                raise ValueError(f"{path}: truncated record")
            if _masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                raise ValueError(f"{path}: corrupt record (CRC mismatch)")
            yield data


# TensorProto dtypes of scalar summaries -> struct format (tensorflow/core/framework/types.proto).
_SCALAR_DTYPES = {1: "<f", 2: "<d", 3: "<i", 9: "<q"}  # DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64


def _scalar(tensor) -> float | None:
    """The value of a one-element numeric TensorProto, else None (TensorBoard's own
    ``tensor_util`` does this too, but costs two seconds of imports)."""
    if tensor.tensor_shape.dim and any(d.size != 1 for d in tensor.tensor_shape.dim):
        return None
    fmt = _SCALAR_DTYPES.get(tensor.dtype)
    if fmt is None:
        return None
    if tensor.tensor_content:
        return float(struct.unpack(fmt, tensor.tensor_content[: struct.calcsize(fmt)])[0])
    for field in ("float_val", "double_val", "int_val", "int64_val"):
        values = getattr(tensor, field)
        if values:
            return float(values[0])
    return None


def read_scalars(log_dir: str) -> dict[str, list[tuple[int, float]]]:
    """Scalar summaries of the TensorBoard event files under ``log_dir``: tag -> [(step, value)].

    Parsed with TensorBoard's own protos and tensor decoding, which import no TensorFlow;
    Keras writes epoch scalars as ``tensor`` values.
    """
    from tensorboard.compat.proto import event_pb2

    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for record in tfrecords(path):
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                if value.HasField("tensor"):
                    number = _scalar(value.tensor)
                elif value.HasField("simple_value"):
                    number = float(value.simple_value)
                else:
                    continue
                if number is None:
                    continue
                scalars.setdefault(value.tag, {})[int(event.step)] = number
    return {tag: sorted(points.items()) for tag, points in scalars.items()}


def _training(reader: RunReader, data: RunData) -> None:
    _, model_run = reader.producing("ModelRun")
    if model_run is None:
        data.notes.append("Training: this run has no ModelRun artifact (the Trainer did not run or failed).")
        return
    try:
        metrics = _read_json(os.path.join(model_run.uri, METRICS_FILE))
    except (OSError, ValueError) as error:
        data.notes.append(f"Training: cannot read {METRICS_FILE} of {model_run.uri}: {error}")
        metrics = {}
    curves = {}
    for phase in ("train", "validation"):
        log_dir = os.path.join(model_run.uri, TENSORBOARD_DIR, phase)
        try:
            scalars = read_scalars(log_dir)
        except (OSError, ValueError) as error:  # a damaged event file: say so, show the rest
            data.notes.append(f"Training: cannot read the TensorBoard events under {log_dir}: {error}")
            scalars = {}
        # Keras' TensorBoard callback logs epoch e (0-based) at step e: shown as epoch e + 1.
        curves[phase] = {
            tag.removeprefix("epoch_"): [(step + 1, value) for step, value in points]
            for tag, points in scalars.items()
            if tag.startswith("epoch_")
        }
    if not any(curves.values()):
        data.notes.append(
            f"Training: no per-epoch TensorBoard scalars under {os.path.join(model_run.uri, TENSORBOARD_DIR)}; "
            "the validation curve comes from metrics.json's validation_history and the training loss is not shown."
        )
    data.training = TrainingData(metrics, curves, model_run.uri)


def _evaluation(reader: RunReader, data: RunData) -> None:
    _, evaluation = reader.producing("ModelEvaluation")
    if evaluation is None:
        data.notes.append("Evaluation: this run has no ModelEvaluation artifact.")
        return
    path = os.path.join(evaluation.uri, EVALUATION_FILE)
    try:
        data.evaluation = _read_json(path)
    except (OSError, ValueError) as error:
        data.notes.append(f"Evaluation: cannot read {path}: {error}")


def _examples(reader: RunReader, data: RunData) -> None:
    seen: dict[int, ExamplesData] = {}

    def add(execution: Execution, artifact) -> None:
        if artifact.id not in seen:
            props = _props(artifact)
            summary = None
            try:
                summary = _read_json(os.path.join(artifact.uri, SUMMARY_FILE))
            except (OSError, ValueError):
                data.notes.append(f"Data: Examples artifact {artifact.id} has no readable {SUMMARY_FILE}.")
            seen[artifact.id] = ExamplesData(
                artifact.id, artifact.uri, props.get("span"), props.get("version"), summary, []
            )
        if execution.node not in seen[artifact.id].used_by:
            seen[artifact.id].used_by.append(execution.node)

    for execution in reader.executions:
        for artifacts in execution.outputs.values():
            for artifact in artifacts:
                if reader.type_name(artifact) == "Examples" and "Resolver" not in execution.node:
                    add(execution, artifact)
    for execution, artifact in reader.consuming("Examples"):
        if "Resolver" not in execution.node:
            add(execution, artifact)
    data.examples = sorted(seen.values(), key=lambda e: ((e.span or 0), (e.version or 0), e.artifact_id))
    if not data.examples:
        data.notes.append("Data: this run read no Examples artifact.")


def _registration_and_lineage(reader: RunReader, data: RunData, model_name: str | None) -> None:
    _, pushed = reader.producing("PushedModel")
    _, model = reader.producing("Model")
    version = -1
    backend, name = "local", model_name or "ranker"
    if pushed is not None:
        props = _props(pushed)
        done = props.get("pushed") == 1
        backend = props.get("registry_backend") or backend
        name = props.get("model_name") or name
        data.registration = {
            "pushed": done,
            "reason": props.get("pushed_reason", ""),
            "backend": backend,
            "model_name": name,
            "version": props.get("pushed_version") if done else None,
            "path": props.get("pushed_destination") if done else None,
            "model_artifact_id": props.get("model_artifact_id"),
        }
        if done:
            version = int(props["pushed_version"])
    if model is None:
        data.notes.append("Lineage: this run produced no Model artifact.")
        return
    try:
        data.lineage = lineage_of(data.metadata_path, model.id, version, backend=backend, model_name=name)
    except LookupError as error:
        data.notes.append(f"Lineage: {error}")
        return
    data.lineage_subject = (
        f"registered version {version} of '{name}' ({backend} registry)"
        if version >= 0
        else f"the candidate model (artifact {model.id}), not registered"
    )


def read_run(metadata_path: str, run_id: str | None = None, model_name: str | None = None) -> RunData:
    """Everything the report shows about one run (the latest by default)."""
    store = open_store(metadata_path)
    run = find_run(store, run_id)
    reader = RunReader(store, run)
    pipelines = (
        [
            c
            for c in store.get_contexts_by_execution(reader.executions[0].id)
            if c.type == constants.PIPELINE_CONTEXT_TYPE_NAME
        ]
        if reader.executions
        else []
    )
    data = RunData(
        run_id=run.name,
        pipeline_name=pipelines[0].name if pipelines else "",
        metadata_path=metadata_path,
        created_ms=run.create_time_since_epoch,
        executions=reader.executions,
    )
    _tuner(reader, data)
    _training(reader, data)
    _evaluation(reader, data)
    _examples(reader, data)
    _registration_and_lineage(reader, data, model_name)
    return data


# ---------------------------------------------------------------- registered versions


@dataclasses.dataclass
class VersionData:
    version: int
    registered_at: str
    serving: bool
    metrics: dict[str, float]
    spans: list[int]
    pipeline_run_id: str | None
    model_artifact_id: str | None
    path: str


def read_versions(registry, model_name: str) -> list[VersionData]:
    """The registry's versions with the metrics recorded when each was registered."""
    found = []
    for v in registry.versions(model_name):
        metrics = v.metadata.get("metrics")
        if not isinstance(metrics, dict):  # MLflow keeps them as flat ``metrics.<name>`` tags
            metrics = {k.split(".", 1)[1]: v.metadata[k] for k in v.metadata if k.startswith("metrics.")}
        examples = v.metadata.get("examples")
        if isinstance(examples, str):
            try:
                examples = json.loads(examples)
            except ValueError:
                examples = []
        spans = sorted({e["span"] for e in examples or [] if isinstance(e, dict) and e.get("span") is not None})
        found.append(
            VersionData(
                version=int(v.version),
                registered_at=str(v.registered_at),
                serving=bool(v.serving),
                metrics={k: float(val) for k, val in metrics.items()},
                spans=spans,
                pipeline_run_id=v.metadata.get("pipeline_run_id") or None,
                model_artifact_id=str(v.metadata.get("model_artifact_id") or "") or None,
                path=v.path,
            )
        )
    return sorted(found, key=lambda v: v.version)
