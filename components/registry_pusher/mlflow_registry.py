"""The MLflow Model Registry backend (``registry.backend: mlflow``).

Each push is an MLflow run in the experiment ``<experiment>`` that holds the
SavedModel as artifacts under ``saved_model/`` (TF Serving's layout inside), its
metrics, and the lineage ids as tags; a model version is created from it only
after the upload finished, so the registry never lists a half-uploaded model.
The model version carries the same tags; the alias ``serving`` marks the version
to serve (moved by every push and by ``ltr registry rollback``).

Identity by content: a version whose tag ``ltr.fingerprint`` equals the pushed
SavedModel's content fingerprint (``registry.content_fingerprint``) is returned
(and served) instead of creating another; a different model at an old path is a
new version.

Concurrency: with a local ``sqlite:///`` tracking URI (the default), pushes hold a
file lock beside the database, so concurrent pushes are serialized. A remote
tracking server allocates version numbers itself, but the lock is per machine:
run at most one push per model at a time against it (see README: Model
registry). Runs left ``uploading`` by a killed push are deleted only once they
are older than ``stale_upload_s`` (default 6 h), so a push still uploading from
another process or machine is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.registry_pusher.names import check_name
from components.registry_pusher.registry import RegisteredVersion, RegistryError, content_fingerprint

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # No network calls from pipeline runs.

ARTIFACT_PATH = "saved_model"
SERVING_ALIAS = "serving"
SOURCE_TAG = "ltr.source"
FINGERPRINT_TAG = "ltr.fingerprint"
STATE_TAG = "ltr.push_state"
DB_FILE = "mlflow.db"
STALE_UPLOAD_S = 6 * 3600


def filter_literal(value: str) -> str:
    """``value`` as a string literal of an MLflow search filter.

    MLflow's filter parser has no escape character: it strips one pair of quotes, so the
    value is quoted with a quote character it does not contain.
    """
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"{value!r} contains both quote characters: it cannot be searched for in MLflow")


def default_tracking_uri(registry_root: str) -> str:
    return "sqlite:///" + os.path.join(os.path.abspath(registry_root), DB_FILE)


def _flatten(metadata: dict[str, Any], prefix: str = "") -> dict[str, str]:
    tags = {}
    for key, value in metadata.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            tags.update(_flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            tags[name] = ",".join(str(v) for v in value)
        elif value is not None:
            tags[name] = str(value)
    return tags


class MlflowRegistry:
    backend = "mlflow"

    def __init__(
        self,
        tracking_uri: str,
        experiment: str = "ltr-registry",
        artifact_root: str | None = None,
        stale_upload_s: float = STALE_UPLOAD_S,
    ):
        from mlflow import MlflowClient  # ~3 s import: only when this backend is used.

        self.tracking_uri = tracking_uri
        self.stale_upload_s = stale_upload_s
        self.experiment = experiment
        self.artifact_root = artifact_root
        with self._locked():
            # Opening a new sqlite database creates and migrates its tables; two
            # processes doing that at once collide, so it happens under the lock.
            self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            self.client.get_experiment_by_name(experiment)
            self.client.search_registered_models(max_results=1)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if not self.tracking_uri.startswith("sqlite:///"):
            yield
            return
        db_path = Path(self.tracking_uri[len("sqlite:///") :])
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{db_path}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        location = None
        if self.artifact_root:
            root = self.artifact_root
            location = root if "://" in root else Path(os.path.abspath(root)).as_uri()
        return self.client.create_experiment(self.experiment, artifact_location=location)

    def _clean_up_killed_pushes(self, experiment_id: str) -> list[str]:
        """Deletes runs left ``uploading`` longer than ``stale_upload_s`` ago; their ids."""
        cutoff_ms = (time.time() - self.stale_upload_s) * 1000
        deleted = []
        for run in self.client.search_runs([experiment_id], filter_string=f"tags.`{STATE_TAG}` = 'uploading'"):
            if run.info.start_time is not None and run.info.start_time < cutoff_ms:
                self.client.delete_run(run.info.run_id)
                deleted.append(run.info.run_id)
        return deleted

    def _search_versions(self, model_name: str):
        return self.client.search_model_versions(f"name = {filter_literal(check_name(model_name, 'model_name'))}")

    def _to_registered(self, mv, new: bool, serving_version: int | None) -> RegisteredVersion:
        tags = dict(mv.tags)
        return RegisteredVersion(
            model_name=mv.name,
            version=int(mv.version),
            path=mv.source,
            source=tags.get(SOURCE_TAG, ""),
            registered_at=str(mv.creation_timestamp),
            metadata={k: v for k, v in tags.items() if k not in (SOURCE_TAG, FINGERPRINT_TAG)},
            newly_registered=new,
            serving=serving_version is not None and int(mv.version) == serving_version,
            fingerprint=tags.get(FINGERPRINT_TAG, ""),
        )

    def register(self, model_name: str, source_dir: str, metadata: dict[str, Any] | None = None) -> RegisteredVersion:
        from mlflow.exceptions import MlflowException

        check_name(model_name, "model_name")
        source = os.path.realpath(source_dir)
        if not os.path.isfile(os.path.join(source, "saved_model.pb")):
            raise FileNotFoundError(f"no SavedModel at '{source_dir}'")
        fingerprint = content_fingerprint(source)
        metadata = metadata or {}
        tags = {**_flatten(metadata), SOURCE_TAG: source, FINGERPRINT_TAG: fingerprint}
        with self._locked():
            experiment_id = self._experiment_id()
            self._clean_up_killed_pushes(experiment_id)
            try:
                self.client.create_registered_model(model_name)
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            for mv in self._search_versions(model_name):
                if mv.tags.get(FINGERPRINT_TAG) == fingerprint:
                    # Identical content is that version; the push serves it, as any push does.
                    self.client.set_registered_model_alias(model_name, SERVING_ALIAS, mv.version)
                    return self._to_registered(mv, False, int(mv.version))
            run = self.client.create_run(experiment_id, tags={**tags, STATE_TAG: "uploading"})
            run_id = run.info.run_id
            for name, value in (metadata.get("metrics") or {}).items():
                self.client.log_metric(run_id, name, float(value))
            self.client.log_artifacts(run_id, source, artifact_path=ARTIFACT_PATH)
            self.client.set_tag(run_id, STATE_TAG, "uploaded")
            self.client.set_terminated(run_id)
            mv = self.client.create_model_version(
                model_name,
                source=f"{run.info.artifact_uri}/{ARTIFACT_PATH}",
                run_id=run_id,
                tags=tags,
            )
            self.client.set_registered_model_alias(model_name, SERVING_ALIAS, mv.version)
            return self._to_registered(mv, True, int(mv.version))

    def versions(self, model_name: str) -> list[RegisteredVersion]:
        serving = self.serving_version(model_name)
        found = self._search_versions(model_name)
        return sorted((self._to_registered(mv, False, serving) for mv in found), key=lambda v: v.version)

    def get(self, model_name: str, version: int) -> RegisteredVersion:
        from mlflow.exceptions import MlflowException

        check_name(model_name, "model_name")
        try:
            mv = self.client.get_model_version(model_name, str(version))
        except MlflowException:
            raise RegistryError(f"MLflow model '{model_name}' has no version {version} ({self.tracking_uri})") from None
        return self._to_registered(mv, False, self.serving_version(model_name))

    def serving_version(self, model_name: str) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_model_version_by_alias(model_name, SERVING_ALIAS).version)
        except MlflowException:
            return None

    def set_serving(self, model_name: str, version: int) -> RegisteredVersion:
        registered = self.get(model_name, version)
        self.client.set_registered_model_alias(model_name, SERVING_ALIAS, str(version))
        return RegisteredVersion(**{**registered.__dict__, "serving": True})

    def download(self, model_name: str, version: int, destination: str) -> str:
        """Copies a version's SavedModel to ``destination``; returns the SavedModel directory."""
        import mlflow.artifacts

        self.get(model_name, version)  # A clear error for an unknown version.
        source = self.client.get_model_version_download_uri(model_name, str(version))
        return mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=destination)
