"""A model registry on a local filesystem, in TF Serving's layout.

``<root>/<model_name>/<version>/saved_model.pb``: point
``tensorflow_model_server --model_base_path=<root>/<model_name>`` at it.
Beside the versions, ``registry.json`` indexes what was registered (source
artifact, metrics, lineage ids, time) and which version is to be served.

Publishing, under an exclusive lock (so concurrent pushes get distinct versions):
copy into a hidden temporary folder and fsync it; record the version in the index
as ``pending``; rename the folder to the version number; mark the entry
``complete``. Readers (``versions``, TF Serving) only ever see complete folders.
A push killed at any point is repaired by the next one: a pending entry whose
copy was finished is completed (renamed if needed), anything else is removed.

Serving: ``tensorflow_model_server --model_base_path=<root>/<model_name>`` serves
the highest version. ``set_serving`` (``ltr registry rollback``) pins another one:
the index's ``serving_version`` and ``<root>/<model_name>/serving.config``, a TF
Serving ``ModelServerConfig`` whose ``model_version_policy`` names that version
(``tensorflow_model_server --model_config_file=<root>/<model_name>/serving.config
--model_config_file_poll_wait_seconds=60`` follows rollbacks without a restart).
Every push moves the pin to the new version, since only blessed models are pushed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

INDEX_FILE = "registry.json"
SERVING_CONFIG_FILE = "serving.config"
LOCK_FILE = ".lock"
TMP_PREFIX = ".tmp-"
PENDING, COMPLETE = "pending", "complete"


class RegistryError(LookupError):
    """A version or model that the registry does not hold."""


@dataclasses.dataclass(frozen=True)
class RegisteredVersion:
    model_name: str
    version: int
    path: str
    source: str
    registered_at: str
    metadata: dict[str, Any]
    newly_registered: bool = True
    serving: bool = False


def _fsync_tree(path: Path) -> None:
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class LocalRegistry:
    backend = "local"

    def __init__(self, root: str | os.PathLike):
        root = os.fspath(root)
        if "://" in root:
            raise ValueError(f"LocalRegistry needs a local directory, got '{root}'")
        self.root = Path(root)

    def model_dir(self, model_name: str) -> Path:
        return self.root / model_name

    @contextlib.contextmanager
    def _locked(self, model_name: str) -> Iterator[Path]:
        model_dir = self.model_dir(model_name)
        model_dir.mkdir(parents=True, exist_ok=True)
        with open(model_dir / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield model_dir
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_index(self, model_dir: Path) -> dict[str, Any]:
        path = model_dir / INDEX_FILE
        if not path.exists():
            return {"versions": [], "serving_version": None}
        index = json.loads(path.read_text())
        index.setdefault("serving_version", None)
        return index

    def _write_index(self, model_dir: Path, index: dict[str, Any]) -> None:
        tmp = model_dir / f"{TMP_PREFIX}{INDEX_FILE}.{uuid.uuid4().hex}"
        with open(tmp, "w") as handle:
            json.dump(index, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, model_dir / INDEX_FILE)
        _fsync_dir(model_dir)

    def _write_serving_config(self, model_name: str, model_dir: Path, version: int | None) -> None:
        config = model_server_config_pb2.ModelServerConfig()
        model = config.model_config_list.config.add()
        model.name = model_name
        model.base_path = str(model_dir.resolve())
        model.model_platform = "tensorflow"
        if version is not None:
            model.model_version_policy.specific.versions.append(version)
        tmp = model_dir / f"{TMP_PREFIX}{SERVING_CONFIG_FILE}.{uuid.uuid4().hex}"
        tmp.write_text(text_format.MessageToString(config))
        os.replace(tmp, model_dir / SERVING_CONFIG_FILE)

    def _recover(self, model_dir: Path, index: dict[str, Any]) -> bool:
        """Repairs what killed pushes left; True if the index changed.

        A pending entry is completed when its copy is whole (the entry is only
        written after the copy was fsynced), and dropped otherwise. Temporary
        files and version folders that no entry knows are removed.
        """
        changed = False
        kept = []
        for entry in index["versions"]:
            if entry.get("status", COMPLETE) == PENDING:
                final = model_dir / str(entry["version"])
                staged = model_dir / entry["staging_dir"]
                if not final.exists() and staged.is_dir():
                    os.rename(staged, final)
                    _fsync_dir(model_dir)
                changed = True
                if not final.exists():
                    continue
                entry = {k: v for k, v in entry.items() if k != "staging_dir"}
                entry["status"] = COMPLETE
                entry["recovered_at"] = _now()
                index["serving_version"] = entry["version"]
            kept.append(entry)
        index["versions"] = kept
        indexed = {entry["version"] for entry in kept}
        for child in model_dir.iterdir():
            if child.name.startswith(TMP_PREFIX):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            elif child.is_dir() and child.name.isdigit() and int(child.name) not in indexed:
                shutil.rmtree(child)
        return changed

    def versions(self, model_name: str) -> list[RegisteredVersion]:
        """Complete versions only, oldest first."""
        model_dir = self.model_dir(model_name)
        if not model_dir.exists():
            return []
        index = self._read_index(model_dir)
        return [
            self._entry(model_name, e, False, index["serving_version"])
            for e in index["versions"]
            if e.get("status", COMPLETE) == COMPLETE
        ]

    def get(self, model_name: str, version: int) -> RegisteredVersion:
        for registered in self.versions(model_name):
            if registered.version == version:
                return registered
        known = [v.version for v in self.versions(model_name)]
        raise RegistryError(f"model '{model_name}' has no version {version} in '{self.root}' (versions: {known})")

    def serving_version(self, model_name: str) -> int | None:
        model_dir = self.model_dir(model_name)
        return self._read_index(model_dir)["serving_version"] if model_dir.exists() else None

    def _entry(
        self, model_name: str, entry: dict[str, Any], new: bool, serving_version: int | None = None
    ) -> RegisteredVersion:
        return RegisteredVersion(
            model_name=model_name,
            version=entry["version"],
            path=str(self.model_dir(model_name) / str(entry["version"])),
            source=entry["source"],
            registered_at=entry["registered_at"],
            metadata=entry.get("metadata", {}),
            newly_registered=new,
            serving=entry["version"] == serving_version,
        )

    def register(self, model_name: str, source_dir: str, metadata: dict[str, Any] | None = None) -> RegisteredVersion:
        """Publishes ``source_dir`` as the next version; the same source twice is one version."""
        source = os.path.realpath(source_dir)
        if not os.path.isfile(os.path.join(source, "saved_model.pb")):
            raise FileNotFoundError(f"no SavedModel at '{source_dir}'")
        with self._locked(model_name) as model_dir:
            index = self._read_index(model_dir)
            if self._recover(model_dir, index):
                self._write_index(model_dir, index)
                self._write_serving_config(model_name, model_dir, index["serving_version"])
            for entry in index["versions"]:
                if entry["source"] == source:
                    return self._entry(model_name, entry, False, index["serving_version"])
            version = max([e["version"] for e in index["versions"]], default=0) + 1
            staged = model_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}"
            shutil.copytree(source, staged)
            _fsync_tree(staged)
            entry = {
                "version": version,
                "source": source,
                "registered_at": _now(),
                "metadata": metadata or {},
                "status": PENDING,
                "staging_dir": staged.name,
            }
            index["versions"].append(entry)
            self._write_index(model_dir, index)  # From here on a killed push is completed by the next one.
            os.rename(staged, model_dir / str(version))
            _fsync_dir(model_dir)
            del entry["staging_dir"]
            entry["status"] = COMPLETE
            index["serving_version"] = version
            self._write_index(model_dir, index)
            self._write_serving_config(model_name, model_dir, version)
            return self._entry(model_name, entry, True, version)

    def set_serving(self, model_name: str, version: int) -> RegisteredVersion:
        """Pins ``version`` as the one to serve (rollback); see the module docstring."""
        with self._locked(model_name) as model_dir:
            index = self._read_index(model_dir)
            if self._recover(model_dir, index):
                self._write_index(model_dir, index)
            registered = self.get(model_name, version)
            index["serving_version"] = version
            self._write_index(model_dir, index)
            self._write_serving_config(model_name, model_dir, version)
            return dataclasses.replace(registered, serving=True, newly_registered=False)
