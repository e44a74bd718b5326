"""Pipeline configuration: one YAML file, validated on load, overridable from the CLI."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from components.registry_pusher.names import NAME_RULE, is_valid_name
from modules.training.config import (
    POSITION_BIAS_MODES,
    STRATEGIES,
    TUNER_ALGORITHMS,
    TUNER_BUDGETS,
    TrainingConfig,
    TunerSettings,
)

# Kept here (not imported from components/) so loading a config stays light.
EVALUATION_METRICS = ("ndcg_1", "ndcg_5", "ndcg_10", "mrr", "dcg_1", "dcg_5", "dcg_10")
REGISTRY_BACKENDS = ("local", "mlflow")

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "default_config.yaml"


class ConfigError(ValueError):
    """Invalid configuration; the message names the file and the key."""


@dataclasses.dataclass
class EventsConfig:
    """``examples.events``: labels made from impression and event logs (components/elwc_example_gen/events.py)."""

    input_pattern: str | None = None  # events files under data_root ({SPAN} as the impressions); null: flat shape
    format: str = "auto"  # auto | csv | jsonl | parquet
    event_column: str = "event"  # separate events input: the column holding the event type
    timestamp_column: str | None = None  # optional; only validated (ISO-8601 or epoch seconds)
    labels: dict[str, int] = dataclasses.field(default_factory=dict)  # event type (or outcome column) -> grade


@dataclasses.dataclass
class ExamplesConfig:
    input_pattern: str = "span-{SPAN}/*.csv"
    span: int | None = None
    max_list_size: int = 200
    train_buckets: int = 3
    eval_buckets: int = 1
    test_buckets: int = 1
    format: str = "auto"
    columns: dict[str, str] = dataclasses.field(default_factory=dict)
    letor_features: dict[str, str] = dataclasses.field(default_factory=dict)
    max_bad_row_fraction: float = 0.01
    rolling_window_spans: int = 1
    on_corrupt_file: str = "fail"  # fail | dead_letter: a truncated/corrupt compressed input
    documents_field: str | None = None  # nested list exports: the field holding each row's documents
    events: EventsConfig | None = None  # null: labels from the schema's label column


@dataclasses.dataclass
class TransformConfig:
    # feature -> transform (log1p | passthrough | zscore | bucketize | vocabulary), over the schema's.
    overrides: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class EvaluationConfig:
    metric: str = "ndcg_10"  # the gated metric: ndcg_1|5|10 | mrr | dcg_1|5|10 (dcg_10 under ipw)
    max_regression: float = 0.01  # how far below the serving model's metric a new one may fall
    min_lift: float = 0.01  # how far above the trivial ranker's metric a new one must be
    min_value: float | None = None  # optional absolute floor (off by default)
    batch_size: int = 64  # lists per serving call
    slices: list[str] = dataclasses.field(default_factory=list)  # context features to slice metrics by


@dataclasses.dataclass
class RegistryConfig:
    backend: str = "local"  # local | mlflow
    mlflow_tracking_uri: str | None = None  # null: sqlite:///<registry_root>/mlflow.db
    mlflow_experiment: str = "ltr-registry"


@dataclasses.dataclass
class MysqlConfig:
    """ML Metadata on a MySQL-compatible server (pipeline/metadata_connection.py)."""

    host: str | None = None  # null: SQLite at metadata_path
    port: int = 3306
    database: str = "ltr_mlmd"  # created by MLMD if absent
    user: str = "ltr"
    password_env: str = "LTR_MLMD_PASSWORD"  # environment variable holding the password ('' = none)


@dataclasses.dataclass
class MetadataConfig:
    mysql: MysqlConfig = dataclasses.field(default_factory=MysqlConfig)


@dataclasses.dataclass
class BeamConfig:
    """How `ltr run` runs the Beam components (pipeline/beam_services.py)."""

    runner: str = "direct"  # direct: beam_args as given | portable: local job service + external worker pool
    workers: int = 2  # portable: SDK worker processes per job


# The `tuner` section is the Tuner module's own settings class.
TunerConfig = TunerSettings


@dataclasses.dataclass
class SampleDataConfig:
    spans: int = 2
    queries: int = 400
    seed: int = 7


@dataclasses.dataclass
class CloudConfig:
    """Settings used only by ``ltr compile`` (Vertex AI / Kubeflow Pipelines)."""

    project: str | None = None
    region: str = "us-central1"
    image: str = "ltr:latest"  # the container image built from kubeflow/Dockerfile
    display_name: str | None = None
    # Run the Tuner's trials and the Trainer as Vertex AI training jobs (target vertex):
    vertex_training: bool = False
    machine_type: str = "n1-standard-8"
    accelerator_type: str | None = None  # e.g. NVIDIA_TESLA_T4
    accelerator_count: int = 0
    ps_machine_type: str = "n1-standard-4"
    parallel_trials: int = 1


@dataclasses.dataclass
class Config:
    pipeline_name: str = "ltr"
    data_root: str = "ltr-home/data"
    pipeline_root: str = "ltr-home/pipeline"
    metadata_path: str = "ltr-home/metadata.sqlite"
    metadata: MetadataConfig = dataclasses.field(default_factory=MetadataConfig)
    registry_root: str = "ltr-home/registry"
    model_name: str = "ranker"
    schema_path: str | None = None
    enable_cache: bool = True
    examples: ExamplesConfig = dataclasses.field(default_factory=ExamplesConfig)
    transform: TransformConfig = dataclasses.field(default_factory=TransformConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    tuner: TunerConfig = dataclasses.field(default_factory=TunerConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    registry: RegistryConfig = dataclasses.field(default_factory=RegistryConfig)
    beam_args: list[str] = dataclasses.field(default_factory=list)
    beam: BeamConfig = dataclasses.field(default_factory=BeamConfig)
    sample_data: SampleDataConfig = dataclasses.field(default_factory=SampleDataConfig)
    cloud: CloudConfig = dataclasses.field(default_factory=CloudConfig)

    def resolved(self, base: Path | None = None) -> Config:
        """Absolute local paths (URIs such as gs:// are kept as they are)."""
        base = base or Path.cwd()

        def absolute(path: str) -> str:
            return path if "://" in path else str((base / path).resolve())

        config = dataclasses.replace(self)
        for name in ("data_root", "pipeline_root", "metadata_path", "registry_root"):
            setattr(config, name, absolute(getattr(config, name)))
        if config.schema_path:
            config.schema_path = absolute(config.schema_path)
        if config.tuner.hyperparameters_uri:
            config.tuner = dataclasses.replace(
                config.tuner, hyperparameters_uri=absolute(config.tuner.hyperparameters_uri)
            )
        return config


# Checks beyond types: (section, key) -> (predicate, message).
_CHECKS: dict[tuple[str, str], tuple[typing.Callable[[Any], bool], str]] = {
    ("", "pipeline_name"): (is_valid_name, NAME_RULE),  # Both become path components.
    ("", "model_name"): (is_valid_name, NAME_RULE),
    ("examples", "span"): (lambda v: v is None or v >= 0, "must be null or >= 0"),
    ("examples", "max_list_size"): (lambda v: v >= 0, "must be >= 0"),
    ("examples", "train_buckets"): (lambda v: v > 0, "must be > 0"),
    ("examples", "eval_buckets"): (lambda v: v > 0, "must be > 0"),
    ("examples", "test_buckets"): (lambda v: v > 0, "must be > 0"),
    ("examples", "format"): (
        lambda v: v in ("auto", "csv", "jsonl", "parquet", "letor", "elwc"),
        "must be one of auto, csv, jsonl, parquet, letor, elwc",
    ),
    ("examples", "max_bad_row_fraction"): (lambda v: 0 <= v <= 1, "must be between 0 and 1"),
    ("examples", "rolling_window_spans"): (lambda v: v >= 1, "must be >= 1"),
    ("examples", "on_corrupt_file"): (lambda v: v in ("fail", "dead_letter"), "must be fail or dead_letter"),
    ("examples", "documents_field"): (lambda v: v is None or bool(v.strip()), "must be null or a field name"),
    ("examples.events", "format"): (
        lambda v: v in ("auto", "csv", "jsonl", "parquet"),
        "must be one of auto, csv, jsonl, parquet",
    ),
    ("examples.events", "event_column"): (lambda v: bool(v.strip()), "must be a column name"),
    ("examples.events", "labels"): (
        lambda v: bool(v) and all(g >= 0 for g in v.values()),
        "must map at least one event type (or outcome column) to a grade >= 0",
    ),
    ("training", "train_steps"): (lambda v: v > 0, "must be > 0"),
    ("training", "eval_steps"): (lambda v: v >= 0, "must be >= 0"),
    ("training", "batch_size"): (lambda v: v > 0, "must be > 0"),
    ("training", "list_size"): (lambda v: v > 0, "must be > 0"),
    ("training", "epochs"): (lambda v: v > 0, "must be > 0"),
    ("training", "strategy"): (lambda v: v in STRATEGIES, f"must be one of {', '.join(STRATEGIES)}"),
    ("training", "early_stopping_patience"): (lambda v: v >= 0, "must be >= 0"),
    ("training", "steps_per_execution"): (lambda v: v > 0, "must be > 0"),
    ("training", "ensemble"): (
        lambda v: v == "auto" if isinstance(v, str) else v > 0,
        "must be auto or > 0 (1: one model)",
    ),
    ("training", "workers"): (lambda v: v > 0, "must be > 0"),
    ("training", "parameter_servers"): (lambda v: v > 0, "must be > 0"),
    ("training", "cluster_timeout_s"): (lambda v: v > 0, "must be > 0"),
    ("training", "position_bias"): (
        lambda v: v in POSITION_BIAS_MODES,
        f"must be one of {', '.join(POSITION_BIAS_MODES)}",
    ),
    ("training", "ipw_max_weight"): (lambda v: v >= 1, "must be >= 1 (the clip of 1 / propensity)"),
    ("tuner", "algorithm"): (lambda v: v in TUNER_ALGORITHMS, f"must be one of {', '.join(TUNER_ALGORITHMS)}"),
    ("tuner", "budget"): (lambda v: v in TUNER_BUDGETS, f"must be one of {', '.join(TUNER_BUDGETS)}"),
    ("tuner", "max_trials"): (lambda v: v is None or v > 0, "must be null (from tuner.budget) or > 0"),
    ("tuner", "epochs"): (lambda v: v is None or v > 0, "must be null (from tuner.budget) or > 0"),
    ("tuner", "train_steps"): (lambda v: v is None or v > 0, "must be null (from tuner.budget) or > 0"),
    ("evaluation", "metric"): (lambda v: v in EVALUATION_METRICS, f"must be one of {', '.join(EVALUATION_METRICS)}"),
    ("evaluation", "min_value"): (lambda v: v is None or 0 <= v <= 1, "must be null or within [0, 1]"),
    ("evaluation", "max_regression"): (lambda v: 0 <= v <= 1, "must be within [0, 1]"),
    ("evaluation", "min_lift"): (lambda v: -1 <= v <= 1, "must be within [-1, 1]"),
    ("evaluation", "batch_size"): (lambda v: v > 0, "must be > 0"),
    ("registry", "backend"): (lambda v: v in REGISTRY_BACKENDS, f"must be one of {', '.join(REGISTRY_BACKENDS)}"),
    ("beam", "runner"): (lambda v: v in ("direct", "portable"), "must be one of direct, portable"),
    ("beam", "workers"): (lambda v: v > 0, "must be > 0"),
    ("metadata.mysql", "port"): (lambda v: 0 < v < 65536, "must be a TCP port (1-65535)"),
    ("sample_data", "spans"): (lambda v: v > 0, "must be > 0"),
    ("sample_data", "queries"): (lambda v: v > 0, "must be > 0"),
}


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is dict:
        key_type, value_type = typing.get_args(annotation)
        return isinstance(value, dict) and all(
            _type_ok(k, key_type) and _type_ok(v, value_type) for k, v in value.items()
        )
    if origin is list:
        (item,) = typing.get_args(annotation)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        key_type, value_type = typing.get_args(annotation)
        return isinstance(value, dict) and all(
            _type_ok(k, key_type) and _type_ok(v, value_type) for k, v in value.items()
        )
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _build(cls: type, data: Any, where: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: '{where or 'top level'}' must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in '{where or 'top level'}'; known: {sorted(fields)}")
    values = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        annotation = hints[name]
        optional = [a for a in typing.get_args(annotation) if dataclasses.is_dataclass(a)]
        if optional and value is None:  # an optional section (examples.events: null)
            values[name] = None
            continue
        if dataclasses.is_dataclass(annotation) or optional:
            values[name] = _build(optional[0] if optional else annotation, value, key, source)
            continue
        if not _type_ok(value, annotation):
            raise ConfigError(f"{source}: '{key}' = {value!r} should be of type {annotation}")
        check = _CHECKS.get((where, name))
        if check and not check[0](value):
            raise ConfigError(f"{source}: '{key}' = {value!r} {check[1]}")
        values[name] = value
    return cls(**values)


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> Config:
    config = _build(Config, data, "", source)
    _check_examples(config.examples, source)
    return config


def _check_examples(examples: ExamplesConfig, source: str) -> None:
    """Checks across keys of the examples section."""
    events = examples.events
    if events is None:
        return
    if examples.documents_field:
        raise ConfigError(
            f"{source}: 'examples.events' and 'examples.documents_field' cannot be combined: events are joined "
            "to flat impression rows"
        )
    if examples.format in ("letor", "elwc"):
        raise ConfigError(
            f"{source}: 'examples.events' needs CSV, JSON Lines or Parquet impressions, not {examples.format}"
        )
    pattern = events.input_pattern
    if pattern is not None:
        specs = re.compile(r"\{(SPAN|VERSION|YYYY|MM|DD)")
        if set(specs.findall(pattern)) != set(specs.findall(examples.input_pattern)):
            raise ConfigError(
                f"{source}: 'examples.events.input_pattern' = {pattern!r} must use the same {{SPAN}}/{{VERSION}}/"
                f"date specs as 'examples.input_pattern' = {examples.input_pattern!r} (one span resolves both)"
            )


def load_config(path: str | Path | None = None) -> Config:
    """Loads the default config, then ``path`` (if given) over it, key by key."""
    data = _read_yaml(DEFAULT_CONFIG_PATH)
    source = str(DEFAULT_CONFIG_PATH)
    if path is not None:
        source = str(path)
        data = _merge(data, _read_yaml(Path(path)))
    return config_from_dict(data, source)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config file '{path}': {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def apply_overrides(config: Config, overrides: dict[str, Any]) -> Config:
    """Applies dotted-key overrides (``training.train_steps``) with the same validation."""
    data = dataclasses.asdict(config)
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return config_from_dict(data, "command line")
