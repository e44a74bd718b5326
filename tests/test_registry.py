"""The local registry: monotonic versions, idempotency, atomic publish, concurrency."""

import json
import multiprocessing
import os
import shutil

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
    second = registry.register("ranker", _model(tmp_path / "m2"))
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


def _die_mid_copy(root, source):
    def partial_copy(src, dst):
        os.makedirs(dst)
        shutil.copy(os.path.join(src, "saved_model.pb"), dst)
        os._exit(9)  # Killed half-way through the push.

    registry_lib.shutil.copytree = partial_copy
    LocalRegistry(root).register("ranker", source)


def test_a_push_killed_half_way_leaves_no_version_and_the_next_push_succeeds(tmp_path):
    root = tmp_path / "reg"
    registry = LocalRegistry(root)
    registry.register("ranker", _model(tmp_path / "m1"))
    process = multiprocessing.get_context("fork").Process(target=_die_mid_copy, args=(root, _model(tmp_path / "m2")))
    process.start()
    process.join()
    assert process.exitcode == 9
    leftovers = [p.name for p in (root / "ranker").iterdir() if p.name.startswith(".tmp-")]
    assert leftovers  # the half-written copy exists, but only under a hidden temporary name
    assert [v.version for v in registry.versions("ranker")] == [1]
    assert sorted(p.name for p in (root / "ranker").iterdir() if p.name.isdigit()) == ["1"]

    nxt = registry.register("ranker", str(tmp_path / "m2"))
    assert nxt.version == 2
    assert not [p for p in (root / "ranker").iterdir() if p.name.startswith(".tmp-")]


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
