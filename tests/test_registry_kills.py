"""Kills at every step of a push and of a rollback, and random sequences of pushes, kills, rollbacks,
lost indexes and restarts: no version folder is ever removed, no version number is reused for other
content, the served version is always a complete one, and serving.config and registry.json agree
once a reader has looked.

A push or rollback runs in a forked child that SIGKILLs itself at the injected step (the registry
calls ``on_step`` at each of ``PUSH_STEPS`` / ``ROLLBACK_STEPS``), as ``kill -9`` would.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal

import pytest

from components.registry_pusher.registry import (
    INDEX_FILE,
    PUSH_STEPS,
    ROLLBACK_STEPS,
    SERVING_CONFIG_FILE,
    STAGING_PREFIX,
    VERSION_FILE,
    LocalRegistry,
    RegistryError,
    content_fingerprint,
)

NAME = "ranker"


def _model(path, payload: str) -> str:
    (path / "variables").mkdir(parents=True, exist_ok=True)
    (path / "saved_model.pb").write_text(f"graph {payload}")
    (path / "variables" / "variables.index").write_text(f"index {payload}")
    (path / "variables" / "variables.data-00000-of-00001").write_text(payload * 50)
    return str(path)


def _kill_self_at(target: str):
    def on_step(step: str) -> None:
        if step == target:
            os.kill(os.getpid(), signal.SIGKILL)

    return on_step


def _in_child(root, step: str, action: str, *args) -> int:
    """Runs ``LocalRegistry(root).<action>(NAME, *args)`` in a child killed at ``step``; its exit code."""

    def child():
        getattr(LocalRegistry(root, on_step=_kill_self_at(step)), action)(NAME, *args)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    return process.exitcode


def _pinned(model_dir) -> int | None:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = model_dir / SERVING_CONFIG_FILE
    if not path.exists():
        return None
    try:
        config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError:
        return None  # Damaged on purpose by the random sequence: TF Serving falls back to the highest.
    (model,) = config.model_config_list.config
    versions = list(model.model_version_policy.specific.versions)
    return versions[-1] if versions else None


class Observer:
    """Everything ever seen in the registry, and the invariants checked against it."""

    def __init__(self, root):
        self.root = root
        self.model_dir = root / NAME
        self.seen: dict[int, str] = {}  # version -> content fingerprint, from the first time it was seen

    def folders(self) -> dict[int, str]:
        if not self.model_dir.exists():
            return {}
        return {
            int(p.name): content_fingerprint(p) for p in self.model_dir.iterdir() if p.name.isdigit() and p.is_dir()
        }

    def check(self, where: str) -> None:
        folders = self.folders()
        for version, fingerprint in self.seen.items():
            assert version in folders, f"{where}: version folder {version} was removed"
            assert folders[version] == fingerprint, f"{where}: version {version} now holds other content"
        assert len(set(folders.values())) == len(folders), f"{where}: identical content registered twice"
        for version, fingerprint in folders.items():
            described = json.loads((self.model_dir / str(version) / VERSION_FILE).read_text())
            assert described["version"] == version and described["fingerprint"] == fingerprint, where
            self.seen.setdefault(version, fingerprint)
        # What TF Serving would load: the pinned version, or the highest without a pin.
        served = _pinned(self.model_dir) if folders else None
        served = served if served is not None else max(folders, default=None)
        if folders:
            assert served in folders, f"{where}: serving.config pins {served}, not a complete version"
            assert (self.model_dir / str(served) / "saved_model.pb").is_file(), where

    def check_after_a_reader(self, registry: LocalRegistry, where: str) -> None:
        listed = registry.versions(NAME)
        folders = self.folders()
        assert [v.version for v in listed] == sorted(folders), where
        assert [v.fingerprint for v in listed] == [folders[v] for v in sorted(folders)], where
        if folders:
            index = json.loads((self.model_dir / INDEX_FILE).read_text())
            served = registry.serving_version(NAME)
            assert index["serving_version"] == served == _pinned(self.model_dir), where
            assert [e["version"] for e in index["versions"]] == sorted(folders), where
            assert [v.serving for v in listed].count(True) == 1, where
        self.check(where)


@pytest.mark.parametrize("step", PUSH_STEPS)
def test_a_push_killed_at_each_step_leaves_a_consistent_registry_and_can_be_pushed_again(tmp_path, step):
    root = tmp_path / "reg"
    registry = LocalRegistry(root)
    observer = Observer(root)
    registry.register(NAME, _model(tmp_path / "m1", "one"))
    observer.check("before")
    m2 = _model(tmp_path / "m2", "two")

    assert _in_child(root, step, "register", m2, {"ndcg_10": 0.5}) == -signal.SIGKILL
    observer.check(f"killed at {step}")
    committed = PUSH_STEPS.index(step) >= PUSH_STEPS.index("renamed")
    assert sorted(observer.folders()) == ([1, 2] if committed else [1])
    assert _pinned(root / NAME) == (2 if PUSH_STEPS.index(step) >= PUSH_STEPS.index("served") else 1)
    leftovers = [p for p in (root / NAME).iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert len(leftovers) == (1 if step in ("staged", "copied", "verified") else 0)  # Hidden from every reader.
    observer.check_after_a_reader(registry, f"read after a kill at {step}")

    again = registry.register(NAME, m2, {"ndcg_10": 0.5})
    assert again.version == 2 and again.newly_registered == (not committed)
    assert registry.get(NAME, 2).metadata == {"ndcg_10": 0.5}
    assert registry.serving_version(NAME) == 2 == _pinned(root / NAME)
    assert not [p for p in (root / NAME).iterdir() if p.name.startswith(STAGING_PREFIX)]
    observer.check_after_a_reader(registry, f"pushed again after a kill at {step}")


@pytest.mark.parametrize("step", ROLLBACK_STEPS)
def test_a_rollback_killed_at_each_step_serves_one_whole_version(tmp_path, step):
    root = tmp_path / "reg"
    registry = LocalRegistry(root)
    observer = Observer(root)
    for i in (1, 2, 3):
        registry.register(NAME, _model(tmp_path / f"m{i}", str(i)))

    assert _in_child(root, step, "set_serving", 1) == -signal.SIGKILL
    observer.check(f"rollback killed at {step}")
    expected = 1 if ROLLBACK_STEPS.index(step) >= ROLLBACK_STEPS.index("served") else 3
    assert _pinned(root / NAME) == expected
    observer.check_after_a_reader(registry, f"read after a rollback killed at {step}")
    assert registry.serving_version(NAME) == expected


def test_staging_is_removed_only_when_it_is_the_registry_s_own(tmp_path):
    """Recovery removes a staging folder recognised by its name and its marker; nothing else."""
    root = tmp_path / "reg"
    registry = LocalRegistry(root)
    registry.register(NAME, _model(tmp_path / "m1", "one"))
    assert _in_child(root, "copied", "register", _model(tmp_path / "m2", "two")) == -signal.SIGKILL
    (ours,) = [p for p in (root / NAME).iterdir() if p.name.startswith(STAGING_PREFIX)]
    lookalike = root / NAME / (STAGING_PREFIX + "0" * 32)  # The right name, no marker: not ours.
    lookalike.mkdir()
    (lookalike / "data").write_text("keep")
    foreign = [root / NAME / "2024", root / NAME / ".tmp-unrelated", root / NAME / "notes"]
    for path in foreign:
        path.mkdir()
    (root / NAME / "notes" / "x").write_text("keep")

    assert registry.register(NAME, _model(tmp_path / "m3", "three")).version == 2025  # Above every numbered folder.
    assert not ours.exists()
    assert (lookalike / "data").read_text() == "keep" and all(path.is_dir() for path in foreign)


OPERATIONS = ("push", "push", "push_same_path", "repush", "push_killed", "rollback", "rollback_killed", "delete_index")
OPERATIONS += ("damage_index", "damage_serving_config", "restart")


@pytest.mark.parametrize("seed", range(6))
def test_random_sequences_of_pushes_kills_rollbacks_and_lost_indexes_keep_every_version(tmp_path, seed):
    rng = random.Random(seed)
    root = tmp_path / "reg"
    registry = LocalRegistry(root)
    observer = Observer(root)
    contents: dict[str, str] = {}  # fingerprint -> payload of every model pushed so far
    counter = 0

    def new_model(path=None) -> str:
        nonlocal counter
        counter += 1
        path = path or tmp_path / "models" / f"m{counter}"
        source = _model(path, f"seed{seed}-model{counter}-{rng.random()}")
        contents[content_fingerprint(source)] = source
        return source

    trainer_path = tmp_path / "trainer" / "Format-Serving"  # The Trainer's path that repeats.
    for step in range(30):
        op = rng.choice(OPERATIONS)
        where = f"seed {seed} step {step} {op}"
        if op in ("push", "push_same_path"):
            source = new_model(trainer_path if op == "push_same_path" else None)
            fingerprint = content_fingerprint(source)
            pushed = registry.register(NAME, source, {"step": step})
            assert pushed.newly_registered and pushed.fingerprint == fingerprint, where
            assert pushed.version > max(observer.seen, default=0), where
            assert content_fingerprint(pushed.path) == fingerprint, where
            assert registry.serving_version(NAME) == pushed.version, where
        elif op == "repush" and observer.seen:
            version = rng.choice(sorted(observer.seen))
            again = registry.register(NAME, observer.model_dir / str(version))
            assert (again.version, again.newly_registered) == (version, False), where
        elif op == "push_killed":
            _in_child(root, rng.choice(PUSH_STEPS), "register", new_model(), {"step": step})
        elif op == "rollback":
            target = rng.randint(1, max(observer.seen, default=0) + 2)
            if target in observer.seen:
                assert registry.set_serving(NAME, target).serving, where
                assert registry.serving_version(NAME) == target, where
            else:
                before = _pinned(observer.model_dir)
                with pytest.raises(RegistryError, match=f"no version {target}"):
                    registry.set_serving(NAME, target)
                assert _pinned(observer.model_dir) == before, where
        elif op == "rollback_killed" and observer.seen:
            _in_child(root, rng.choice(ROLLBACK_STEPS), "set_serving", rng.choice(sorted(observer.seen)))
        elif op == "delete_index":
            (observer.model_dir / INDEX_FILE).unlink(missing_ok=True)
        elif op == "damage_index" and observer.model_dir.exists():
            (observer.model_dir / INDEX_FILE).write_text('{"versions": [{"version": 1, "sou')
        elif op == "damage_serving_config" and observer.model_dir.exists():
            (observer.model_dir / SERVING_CONFIG_FILE).write_text("model_config_list { config { name: ")
        elif op == "restart":
            registry = LocalRegistry(root)
        observer.check(where)
        if rng.random() < 0.5:
            observer.check_after_a_reader(registry, where + " (then read)")
    observer.check_after_a_reader(registry, f"seed {seed} end")
    assert observer.seen, "the sequence registered nothing"
