"""The local registry: monotonic versions, idempotency, atomic publish, concurrency (kills: test_registry_kills)."""

import json
import multiprocessing
import os
import shutil
import signal
import time

import pytest

from components.registry_pusher import registry as registry_lib
from components.registry_pusher.registry import INDEX_FILE, LocalRegistry


def _model(path, payload="x"):
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_text(payload)
    (path / "variables").mkdir()
    (path / "variables" / "variables.index").write_text(payload * 100)
    return str(path)


def test_versions_increase_and_layout_is_tf_serving(tmp_path):
    registry = LocalRegistry(tmp_path / "reg")
    first = registry.register("ranker", _model(tmp_path / "m1"), {"ndcg_10": 0.8})
    second = registry.register("ranker", _model(tmp_path / "m2", payload="y"))
    assert (first.version, second.version) == (1, 2)
    assert first.newly_registered and second.newly_registered
    assert (tmp_path / "reg" / "ranker" / "2" / "saved_model.pb").is_file()
    assert (tmp_path / "reg" / "ranker" / "2" / "variables" / "variables.index").is_file()
    index = json.loads((tmp_path / "reg" / "ranker" / INDEX_FILE).read_text())
    assert [entry["version"] for entry in index["versions"]] == [1, 2]
    assert index["versions"][0]["metadata"] == {"ndcg_10": 0.8}
    assert [v.version for v in registry.versions("ranker")] == [1, 2]


def test_pushing_the_same_model_twice_is_one_version(tmp_path):
    registry = LocalRegistry(tmp_path / "reg")
    source = _model(tmp_path / "m1")
    first = registry.register("ranker", source)
    again = registry.register("ranker", source)
    assert again.version == first.version == 1
    assert not again.newly_registered
    assert len(registry.versions("ranker")) == 1


def test_rejects_a_folder_without_saved_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no SavedModel"):
        LocalRegistry(tmp_path / "reg").register("ranker", str(tmp_path / "empty"))


def _register(root, source, queue):
    queue.put(LocalRegistry(root).register("ranker", source).version)


def test_concurrent_pushes_get_distinct_versions(tmp_path):
    root = tmp_path / "reg"
    sources = [_model(tmp_path / f"m{i}", payload=str(i)) for i in range(4)]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [context.Process(target=_register, args=(root, source, queue)) for source in sources]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    versions = sorted(queue.get() for _ in processes)
    assert versions == [1, 2, 3, 4]
    assert len(LocalRegistry(root).versions("ranker")) == 4


def test_remote_uris_are_refused_clearly():
    with pytest.raises(ValueError, match="local directory"):
        LocalRegistry("gs://bucket/registry")


def _slow_push(root, source, started):
    real_copytree = shutil.copytree

    def slow_copy(src, dst, **kwargs):
        shutil.copy2(src, dst, **kwargs)
        open(started, "w").close()
        time.sleep(60)  # The parent SIGKILLs us here, mid-copy.

    registry_lib.shutil.copytree = lambda src, dst, **kwargs: real_copytree(src, dst, copy_function=slow_copy, **kwargs)
    LocalRegistry(root).register("ranker", source)


def test_sigkill_during_a_push_leaves_the_registry_consistent(tmp_path):
    root = tmp_path / "reg"
    registry = LocalRegistry(root)
    registry.register("ranker", _model(tmp_path / "m1"))
    started = tmp_path / "started"
    process = multiprocessing.get_context("fork").Process(
        target=_slow_push, args=(root, _model(tmp_path / "m2", payload="2"), str(started))
    )
    process.start()
    deadline = time.time() + 30
    while not started.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert started.exists()
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    assert process.exitcode == -signal.SIGKILL
    assert [v.version for v in registry.versions("ranker")] == [1]
    assert sorted(p.name for p in (root / "ranker").iterdir() if p.name.isdigit()) == ["1"]
    # The killed push held the lock; the kernel released it, so the next push proceeds.
    assert registry.register("ranker", str(tmp_path / "m2")).version == 2
    assert not [p for p in (root / "ranker").iterdir() if p.name.startswith(registry_lib.STAGING_PREFIX)]


def test_rollback_pins_a_version_in_the_index_and_the_tf_serving_config(tmp_path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    root = tmp_path / "reg"
    registry = LocalRegistry(root)
    for i in (1, 2, 3):
        registry.register("ranker", _model(tmp_path / f"m{i}", payload=str(i)))

    def served() -> list[int]:
        text = (root / "ranker" / registry_lib.SERVING_CONFIG_FILE).read_text()
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
        (model,) = config.model_config_list.config
        assert model.name == "ranker" and model.base_path == str((root / "ranker").resolve())
        return list(model.model_version_policy.specific.versions)

    assert registry.serving_version("ranker") == 3 and served() == [3]
    registry.set_serving("ranker", 1)
    assert registry.serving_version("ranker") == 1 and served() == [1]
    assert [v.serving for v in registry.versions("ranker")] == [True, False, False]
    with pytest.raises(registry_lib.RegistryError, match="no version 7"):
        registry.set_serving("ranker", 7)
    # A new (blessed) push is served from then on.
    registry.register("ranker", _model(tmp_path / "m4", payload="4"))
    assert served() == [4]


def test_a_registry_written_by_the_previous_format_is_read_and_upgraded_in_place(tmp_path):
    """Version folders without ltr_version.json, an index with status fields and no fingerprints."""
    model_dir = tmp_path / "reg" / "ranker"
    for i in (1, 2):
        _model(model_dir / str(i), payload=str(i))
    old_index = {
        "serving_version": 1,
        "versions": [
            {
                "version": i,
                "source": f"/old/m{i}",
                "registered_at": "2025-01-01T00:00:00+00:00",
                "status": "complete",
                "metadata": {"ndcg_10": i / 10},
            }
            for i in (1, 2)
        ],
    }
    (model_dir / INDEX_FILE).write_text(json.dumps(old_index))
    registry = LocalRegistry(tmp_path / "reg")

    listed = registry.versions("ranker")
    assert [(v.version, v.metadata, v.serving) for v in listed] == [
        (1, {"ndcg_10": 0.1}, True),
        (2, {"ndcg_10": 0.2}, False),
    ]
    for i in (1, 2):  # Each version now describes itself, so the index can be rebuilt from here on.
        assert json.loads((model_dir / str(i) / registry_lib.VERSION_FILE).read_text())["source"] == f"/old/m{i}"
    (model_dir / INDEX_FILE).unlink()
    assert [v.metadata for v in registry.versions("ranker")] == [{"ndcg_10": 0.1}, {"ndcg_10": 0.2}]
    # Identity by content reaches the old versions too (fingerprinted on first need).
    again = registry.register("ranker", _model(tmp_path / "copy-of-2", payload="2"))
    assert (again.version, again.newly_registered) == (2, False)
    assert registry.register("ranker", _model(tmp_path / "m3", payload="3")).version == 3
