"""A model registry on a local filesystem, in TF Serving's layout.

``<root>/<model_name>/<version>/saved_model.pb``: point
``tensorflow_model_server --model_base_path=<root>/<model_name>`` at it.

The version folders are the truth. Each one carries its own ``ltr_version.json``
(version, content fingerprint, source, metadata, time), written before the folder
is renamed into place; ``registry.json`` beside them is a cache of those files plus
the serving pin, rebuilt from the folders when it is missing or damaged (with a
one-line warning naming it). Nothing is deleted but the registry's own staging
folders, recognised by their name *and* the marker file inside them.

A push, under an exclusive lock (so concurrent pushes get distinct versions):
1. fingerprint the SavedModel (``saved_model.pb``, ``variables/``, ``assets/``); if a
   version holds identical content, that version is the answer (and is served);
2. copy it into ``.ltr-staging-<hex>/`` (marker file first), fingerprint the copy,
   write ``ltr_version.json``, fsync;
3. rename the staging folder to the next version number (the commit point: TF
   Serving and readers only ever see whole folders), drop the marker;
4. pin the version in ``serving.config``, then record everything in ``registry.json``.
A push killed before step 3 leaves only a staging folder, removed by the next push;
killed after it, the version exists and the next reader completes the cache.

Serving: ``serving.config`` is a TF Serving ``ModelServerConfig`` whose
``model_version_policy`` names the version to serve (``tensorflow_model_server
--model_config_file=<root>/<model_name>/serving.config
--model_config_file_poll_wait_seconds=60`` follows rollbacks without a restart);
it is written before ``registry.json``, so after any kill it is the one to trust,
and a reader rewrites ``registry.json``'s ``serving_version`` to match. Every push
moves the pin to its version, since only blessed models are pushed; ``set_serving``
(``ltr registry rollback``) pins another one.

Version numbers only grow: the next one is above every numbered folder and every
number the index ever recorded, so a number never names two different models.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.registry_pusher.names import check_name, path_under

INDEX_FILE = "registry.json"
SERVING_CONFIG_FILE = "serving.config"
VERSION_FILE = "ltr_version.json"
LOCK_FILE = ".lock"
STAGING_PREFIX = ".ltr-staging-"
STAGING_MARKER = ".ltr-staging"
TMP_PREFIX = ".ltr-tmp-"
FINGERPRINTED = ("saved_model.pb", "variables", "assets")
INDEX_FORMAT = 2
# The points of a push at which a kill leaves a different state (``on_step`` is called at each).
PUSH_STEPS = ("locked", "staged", "copied", "verified", "renamed", "served", "indexed")
ROLLBACK_STEPS = ("locked", "served", "indexed")

_STAGING_NAME = re.compile(re.escape(STAGING_PREFIX) + r"[0-9a-f]{32}")
_TMP_NAME = re.compile(
    re.escape(TMP_PREFIX)
    + r"[0-9a-f]{32}\.("
    + "|".join(map(re.escape, (INDEX_FILE, SERVING_CONFIG_FILE, VERSION_FILE)))
    + ")"
)
_log = logging.getLogger(__name__)


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
    fingerprint: str = ""


def content_fingerprint(model_dir: str | os.PathLike) -> str:
    """``sha256:<hex>`` over the SavedModel's files (``saved_model.pb``, ``variables/``, ``assets/``) and names."""
    base = Path(model_dir)
    files: list[Path] = []
    for top in FINGERPRINTED:
        path = base / top
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(base).as_posix()):
        digest.update(f"{path.relative_to(base).as_posix()}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


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


def _write_atomically(path: Path, text: str) -> None:
    """Replaces ``path`` with ``text`` through a fsynced temporary file beside it."""
    tmp = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}.{path.name}"
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _version_number(name: str) -> int | None:
    return int(name) if name.isascii() and name.isdigit() else None


@dataclasses.dataclass
class _State:
    """What the folders, ``serving.config`` and ``registry.json`` of one model say, reconciled."""

    entries: dict[int, dict[str, Any]]
    serving_version: int | None
    last_version: int
    index_ok: bool  # registry.json already says exactly this
    config_ok: bool  # serving.config already pins serving_version
    backfill: list[int]  # registry-made versions whose folder lacks ltr_version.json (older registries)

    def index(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "versions": [self.entries[v] for v in sorted(self.entries)],
            "serving_version": self.serving_version,
            "last_version": self.last_version,
        }


class LocalRegistry:
    backend = "local"

    def __init__(self, root: str | os.PathLike, on_step: Callable[[str], None] | None = None):
        """``on_step(name)`` is called at each of ``PUSH_STEPS`` / ``ROLLBACK_STEPS`` (tests inject kills there)."""
        root = os.fspath(root)
        if "://" in root:
            raise ValueError(f"LocalRegistry needs a local directory, got '{root}'")
        self.root = Path(root)
        self._on_step = on_step

    def _step(self, name: str) -> None:
        if self._on_step is not None:
            self._on_step(name)

    def model_dir(self, model_name: str) -> Path:
        """``<root>/<model_name>``, once the name is a plain name and the path stays under the root."""
        check_name(model_name, "model_name")
        path_under(self.root, model_name)
        return self.root / model_name

    @contextlib.contextmanager
    def _locked(self, model_dir: Path, blocking: bool = True) -> Iterator[bool]:
        """Holds the model's lock; yields False (without it) if ``blocking`` is False and it is taken."""
        if blocking:
            model_dir.mkdir(parents=True, exist_ok=True)
        try:
            lock = open(model_dir / LOCK_FILE, "a")
        except OSError:  # A read-only registry: readers still answer, they just repair nothing.
            if blocking:
                raise
            yield False
            return
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # Reading: the folders, then serving.config, then registry.json for what the folders lack.

    def _read_index(self, model_dir: Path, has_versions: bool) -> dict[str, Any] | None:
        path = model_dir / INDEX_FILE
        try:
            index = json.loads(path.read_bytes())
        except FileNotFoundError:
            if has_versions:
                _log.warning("%s is missing: rebuilt from the version folders", path)
            return None
        except (OSError, ValueError) as error:
            _log.warning("%s is not valid JSON (%s): rebuilt from the version folders", path, error)
            return None
        if not (isinstance(index, dict) and isinstance(index.get("versions", []), list)):
            _log.warning("%s is not a registry index: rebuilt from the version folders", path)
            return None
        return index

    def _read_version_file(self, folder: Path) -> dict[str, Any] | None:
        path = folder / VERSION_FILE
        try:
            entry = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            _log.warning("%s is not valid JSON (%s): using registry.json for this version", path, error)
            return None
        if not isinstance(entry, dict) or entry.get("version") != _version_number(folder.name):
            _log.warning("%s does not describe version %s: using registry.json for it", path, folder.name)
            return None
        return {k: entry.get(k) for k in ("version", "source", "registered_at", "metadata", "fingerprint")}

    def _read_pin(self, model_dir: Path, model_name: str) -> tuple[bool, int | None]:
        """(readable, pinned version) from ``serving.config``; no pin means TF Serving's latest."""
        try:
            config = text_format.Parse(
                (model_dir / SERVING_CONFIG_FILE).read_text(), model_server_config_pb2.ModelServerConfig()
            )
        except (OSError, UnicodeDecodeError, text_format.ParseError):
            return False, None
        models = [m for m in config.model_config_list.config if m.name == model_name]
        if len(models) != 1:
            return False, None
        pinned = models[0].model_version_policy.specific.versions
        return True, (int(pinned[-1]) if pinned else None)

    def _load(self, model_name: str, model_dir: Path) -> _State:
        folders: dict[int, Path] = {}
        numbered = [0]
        if model_dir.is_dir():
            for child in model_dir.iterdir():
                number = _version_number(child.name)
                if number is None or not child.is_dir():
                    continue
                numbered.append(number)  # Any numbered folder, ours or not, keeps its number.
                if (child / "saved_model.pb").is_file():
                    folders[number] = child
        raw = self._read_index(model_dir, bool(folders))
        index = raw or {}
        indexed = {
            e["version"]: e
            for e in index.get("versions", [])
            if isinstance(e, dict) and isinstance(e.get("version"), int) and e.get("status", "complete") == "complete"
        }
        entries, backfill = {}, []
        for number, folder in sorted(folders.items()):
            entry = self._read_version_file(folder)
            if entry is None and number in indexed:
                known = indexed[number]
                entry = {
                    "version": number,
                    "source": known.get("source", ""),
                    "registered_at": known.get("registered_at", ""),
                    "metadata": known.get("metadata", {}),
                    "fingerprint": known.get("fingerprint"),
                }
                if known.get("unregistered"):
                    entry["unregistered"] = True
                elif not folder.is_symlink():  # Never written through a link that may lead out of the root.
                    backfill.append(number)
            elif entry is None:  # A SavedModel folder the registry did not write: listed, never touched.
                mtime = datetime.datetime.fromtimestamp(folder.stat().st_mtime, datetime.UTC)
                entry = {
                    "version": number,
                    "source": "",
                    "registered_at": mtime.isoformat(timespec="seconds"),
                    "metadata": {},
                    "fingerprint": None,
                    "unregistered": True,
                }
            if entry.get("fingerprint") is None and isinstance(indexed.get(number, {}).get("fingerprint"), str):
                entry["fingerprint"] = indexed[number]["fingerprint"]
            entries[number] = entry

        readable, pinned = self._read_pin(model_dir, model_name)
        recorded = index.get("serving_version")
        if readable and pinned in entries:
            serving = pinned
        elif readable and pinned is None and entries:
            serving = max(entries)  # An unpinned config serves the latest version.
        elif recorded in entries:
            serving = recorded
        else:
            serving = max(entries, default=None)
        last = index.get("last_version")
        last = max([*numbered, *entries, last if isinstance(last, int) else 0])
        state = _State(entries, serving, last, False, False, backfill)
        state.index_ok = raw is not None and raw == json.loads(json.dumps(state.index(), default=str))
        pinned_ok = pinned == serving or (pinned is None and serving == max(entries, default=None))
        state.config_ok = serving is None or (readable and pinned_ok)
        return state

    # Repairing: only under the lock, only the registry's own files.

    def _remove_leftovers(self, model_dir: Path) -> None:
        """Staging folders (name and marker) and temporary files of killed pushes; nothing else."""
        resolved = model_dir.resolve()
        for child in model_dir.iterdir():
            if child.is_symlink() or child.resolve().parent != resolved:
                continue
            if _STAGING_NAME.fullmatch(child.name) and child.is_dir() and (child / STAGING_MARKER).is_file():
                shutil.rmtree(child)
            elif _TMP_NAME.fullmatch(child.name) and child.is_file():
                child.unlink()
            elif _version_number(child.name) is not None and child.is_dir() and (child / VERSION_FILE).is_file():
                for leftover in child.iterdir():
                    if leftover.name == STAGING_MARKER or (_TMP_NAME.fullmatch(leftover.name) and leftover.is_file()):
                        leftover.unlink()

    def _backfill(self, model_name: str, model_dir: Path, state: _State) -> None:
        """Gives versions recorded only in registry.json (older registries) their own ltr_version.json."""
        for number in state.backfill:
            entry = self._version_json(model_name, state.entries[number])
            _write_atomically(model_dir / str(number) / VERSION_FILE, entry)
        state.backfill = []

    def _repair(self, model_name: str, model_dir: Path, state: _State) -> None:
        self._remove_leftovers(model_dir)
        self._backfill(model_name, model_dir, state)
        if not state.config_ok:
            self._write_serving_config(model_name, model_dir, state.serving_version)
            state.config_ok = True
        if not state.index_ok:
            self._write_index(model_dir, state)
            state.index_ok = True

    def _state(self, model_name: str) -> _State:
        """The reconciled state; if no push holds the lock, what disagrees is repaired on the way."""
        model_dir = self.model_dir(model_name)
        if not model_dir.is_dir():
            return _State({}, None, 0, True, True, [])
        with self._locked(model_dir, blocking=False) as locked:
            state = self._load(model_name, model_dir)
            if locked and (not state.index_ok or not state.config_ok or state.backfill):
                with contextlib.suppress(OSError):  # A read-only registry is still readable.
                    self._repair(model_name, model_dir, state)
        return state

    # Writing.

    @staticmethod
    def _version_json(model_name: str, entry: dict[str, Any]) -> str:
        described = {"format": INDEX_FORMAT, "model_name": model_name, **entry}
        return json.dumps(described, indent=2, sort_keys=True, default=str)

    def _write_index(self, model_dir: Path, state: _State) -> None:
        _write_atomically(model_dir / INDEX_FILE, json.dumps(state.index(), indent=2, sort_keys=True, default=str))

    def _write_serving_config(self, model_name: str, model_dir: Path, version: int | None) -> None:
        config = model_server_config_pb2.ModelServerConfig()
        model = config.model_config_list.config.add()
        model.name = model_name
        model.base_path = str(model_dir.resolve())
        model.model_platform = "tensorflow"
        if version is not None:
            model.model_version_policy.specific.versions.append(version)
        _write_atomically(model_dir / SERVING_CONFIG_FILE, text_format.MessageToString(config))

    def _serve(self, model_name: str, model_dir: Path, state: _State, version: int) -> None:
        """Pins ``version``: serving.config first (what TF Serving reads), then the index."""
        self._remove_leftovers(model_dir)
        self._backfill(model_name, model_dir, state)
        state.serving_version = version
        self._write_serving_config(model_name, model_dir, version)
        self._step("served")
        self._write_index(model_dir, state)
        self._step("indexed")

    # The public interface (shared with MlflowRegistry).

    def versions(self, model_name: str) -> list[RegisteredVersion]:
        """Complete versions only, oldest first."""
        state = self._state(model_name)
        return [self._entry(model_name, state.entries[v], False, state.serving_version) for v in sorted(state.entries)]

    def get(self, model_name: str, version: int) -> RegisteredVersion:
        state = self._state(model_name)
        if version not in state.entries:
            raise self._no_version(model_name, version, state)
        return self._entry(model_name, state.entries[version], False, state.serving_version)

    def _no_version(self, model_name: str, version: int, state: _State) -> RegistryError:
        known = sorted(state.entries)
        return RegistryError(f"model '{model_name}' has no version {version} in '{self.root}' (versions: {known})")

    def serving_version(self, model_name: str) -> int | None:
        return self._state(model_name).serving_version

    def _entry(
        self, model_name: str, entry: dict[str, Any], new: bool, serving_version: int | None = None
    ) -> RegisteredVersion:
        return RegisteredVersion(
            model_name=model_name,
            version=entry["version"],
            path=str(self.model_dir(model_name) / str(entry["version"])),
            source=entry.get("source") or "",
            registered_at=entry.get("registered_at") or "",
            metadata=entry.get("metadata") or {},
            newly_registered=new,
            serving=entry["version"] == serving_version,
            fingerprint=entry.get("fingerprint") or "",
        )

    def register(self, model_name: str, source_dir: str, metadata: dict[str, Any] | None = None) -> RegisteredVersion:
        """Publishes ``source_dir`` as the next version, unless a version holds identical content."""
        model_dir = self.model_dir(model_name)
        source = os.path.realpath(source_dir)
        if not os.path.isfile(os.path.join(source, "saved_model.pb")):
            raise FileNotFoundError(f"no SavedModel at '{source_dir}'")
        fingerprint = content_fingerprint(source)
        with self._locked(model_dir):
            self._step("locked")
            state = self._load(model_name, model_dir)
            self._remove_leftovers(model_dir)
            for number, entry in sorted(state.entries.items()):
                if entry.get("fingerprint") is None:  # Written by an older registry (or not by one): hash it now.
                    entry["fingerprint"] = content_fingerprint(model_dir / str(number))
                if entry["fingerprint"] == fingerprint:
                    self._serve(model_name, model_dir, state, number)
                    return self._entry(model_name, entry, False, number)

            version = state.last_version + 1
            staged = path_under(model_dir, f"{STAGING_PREFIX}{uuid.uuid4().hex}")
            staged.mkdir()
            (staged / STAGING_MARKER).write_text(f"staging folder of a push by pid {os.getpid()}\n")
            self._step("staged")
            shutil.copytree(source, staged, dirs_exist_ok=True)
            self._step("copied")
            copied = content_fingerprint(staged)
            if copied != fingerprint:
                shutil.rmtree(staged)
                raise RuntimeError(f"'{source_dir}' changed while it was being copied into the registry; push it again")
            entry = {
                "version": version,
                "source": source,
                "registered_at": _now(),
                "metadata": metadata or {},
                "fingerprint": fingerprint,
            }
            (staged / VERSION_FILE).write_text(self._version_json(model_name, entry))
            _fsync_tree(staged)
            self._step("verified")
            final = path_under(model_dir, str(version))
            if final.exists():  # Not ours to replace (last_version counts every numbered folder).
                raise RuntimeError(f"'{final}' appeared during the push; not overwriting it")
            os.rename(staged, final)  # The commit point.
            _fsync_dir(model_dir)
            (final / STAGING_MARKER).unlink()
            self._step("renamed")
            state.entries[version] = entry
            state.last_version = version
            self._serve(model_name, model_dir, state, version)
            return self._entry(model_name, entry, True, version)

    def set_serving(self, model_name: str, version: int) -> RegisteredVersion:
        """Pins ``version`` as the one to serve (rollback); see the module docstring."""
        model_dir = self.model_dir(model_name)
        if not model_dir.is_dir():
            raise self._no_version(model_name, version, _State({}, None, 0, True, True, []))
        with self._locked(model_dir):
            self._step("locked")
            state = self._load(model_name, model_dir)
            if version not in state.entries:
                raise self._no_version(model_name, version, state)
            self._serve(model_name, model_dir, state, version)
            return self._entry(model_name, state.entries[version], False, version)
