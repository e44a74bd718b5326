"""A model registry on a local filesystem, in TF Serving's layout.

``<root>/<model_name>/<version>/saved_model.pb``: point
``tensorflow_model_server --model_base_path=<root>/<model_name>`` at it.
Beside the versions, ``registry.json`` indexes what was registered (source
artifact, metrics, time). Publishing copies into a hidden temporary folder,
fsyncs, then renames it to the next version number under an exclusive lock,
so readers never see a half-written version, concurrent pushes get distinct
versions, and a push killed half-way leaves only a temporary folder that the
next push removes.
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

INDEX_FILE = "registry.json"
LOCK_FILE = ".lock"
TMP_PREFIX = ".tmp-"


@dataclasses.dataclass(frozen=True)
class RegisteredVersion:
    model_name: str
    version: int
    path: str
    source: str
    registered_at: str
    metadata: dict[str, Any]
    newly_registered: bool = True


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


class LocalRegistry:
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
            return {"versions": []}
        return json.loads(path.read_text())

    def _write_index(self, model_dir: Path, index: dict[str, Any]) -> None:
        tmp = model_dir / f"{TMP_PREFIX}{INDEX_FILE}.{uuid.uuid4().hex}"
        with open(tmp, "w") as handle:
            json.dump(index, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, model_dir / INDEX_FILE)
        _fsync_dir(model_dir)

    def _recover(self, model_dir: Path, index: dict[str, Any]) -> None:
        """Removes leftovers of killed pushes; a version folder without index entry is dropped."""
        indexed = {entry["version"] for entry in index["versions"]}
        for child in model_dir.iterdir():
            if child.name.startswith(TMP_PREFIX):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            elif child.is_dir() and child.name.isdigit() and int(child.name) not in indexed:
                shutil.rmtree(child)

    def versions(self, model_name: str) -> list[RegisteredVersion]:
        model_dir = self.model_dir(model_name)
        if not model_dir.exists():
            return []
        return [self._entry(model_name, e, False) for e in self._read_index(model_dir)["versions"]]

    def _entry(self, model_name: str, entry: dict[str, Any], new: bool) -> RegisteredVersion:
        return RegisteredVersion(
            model_name=model_name,
            version=entry["version"],
            path=str(self.model_dir(model_name) / str(entry["version"])),
            source=entry["source"],
            registered_at=entry["registered_at"],
            metadata=entry.get("metadata", {}),
            newly_registered=new,
        )

    def register(self, model_name: str, source_dir: str, metadata: dict[str, Any] | None = None) -> RegisteredVersion:
        """Publishes ``source_dir`` as the next version; the same source twice is one version."""
        source = os.path.realpath(source_dir)
        if not os.path.isfile(os.path.join(source, "saved_model.pb")):
            raise FileNotFoundError(f"no SavedModel at '{source_dir}'")
        with self._locked(model_name) as model_dir:
            index = self._read_index(model_dir)
            self._recover(model_dir, index)
            for entry in index["versions"]:
                if entry["source"] == source:
                    return self._entry(model_name, entry, False)
            version = max([e["version"] for e in index["versions"]], default=0) + 1
            tmp = model_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}"
            shutil.copytree(source, tmp)
            _fsync_tree(tmp)
            os.rename(tmp, model_dir / str(version))
            _fsync_dir(model_dir)
            entry = {
                "version": version,
                "source": source,
                "registered_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "metadata": metadata or {},
            }
            index["versions"].append(entry)
            self._write_index(model_dir, index)
            return self._entry(model_name, entry, True)
