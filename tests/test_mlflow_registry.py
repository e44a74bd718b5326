"""The MLflow Model Registry backend: register, load back, idempotency, rollback, concurrency."""

import multiprocessing
import shutil
import time

import numpy as np
import pytest
import tensorflow as tf

from components.registry_pusher.backends import open_registry
from components.registry_pusher.mlflow_registry import (
    SERVING_ALIAS,
    MlflowRegistry,
    default_tracking_uri,
    filter_literal,
)
from components.registry_pusher.registry import RegistryError


def _saved_model(path, weight: float) -> str:
    """A tiny SavedModel with an ``examples`` -> ``scores`` signature, like the Trainer's."""
    module = tf.Module()
    module.w = tf.Variable(weight)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
        lengths = tf.cast(tf.strings.length(examples), tf.float32)
        return {"scores": module.w * lengths}

    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return str(path)


@pytest.fixture()
def registry(tmp_path):
    return open_registry("mlflow", str(tmp_path / "registry"))


METADATA = {"model_artifact_id": 42, "metrics": {"ndcg_10": 0.81, "mrr": 0.9}, "examples": [{"span": 2}]}


def test_registers_a_version_that_loads_and_scores(registry, tmp_path):
    assert isinstance(registry, MlflowRegistry)
    assert registry.tracking_uri == default_tracking_uri(str(tmp_path / "registry"))
    registered = registry.register("ranker", _saved_model(tmp_path / "m1", 2.0), METADATA)
    assert (registered.version, registered.newly_registered, registered.serving) == (1, True, True)
    assert registered.metadata["model_artifact_id"] == "42"
    assert registered.metadata["metrics.ndcg_10"] == "0.81"
    assert registered.metadata["examples"] == "{'span': 2}"

    local = registry.download("ranker", 1, str(tmp_path / "download"))
    loaded = tf.saved_model.load(local)
    scores = loaded.signatures["serving_default"](examples=tf.constant([b"abc", b"a"]))["scores"].numpy()
    np.testing.assert_allclose(scores, [6.0, 2.0])
    run = registry.client.get_run(registry.client.get_model_version("ranker", "1").run_id)
    assert run.data.metrics == {"ndcg_10": 0.81, "mrr": 0.9}


def test_pushing_the_same_model_twice_is_one_version_and_rollback_moves_the_alias(registry, tmp_path):
    m1 = _saved_model(tmp_path / "m1", 1.0)
    assert registry.register("ranker", m1, METADATA).version == 1
    again = registry.register("ranker", m1, METADATA)
    assert (again.version, again.newly_registered) == (1, False)
    assert registry.register("ranker", _saved_model(tmp_path / "m2", 3.0)).version == 2
    assert [v.version for v in registry.versions("ranker")] == [1, 2]
    assert registry.serving_version("ranker") == 2

    registry.set_serving("ranker", 1)
    assert registry.serving_version("ranker") == 1
    assert int(registry.client.get_model_version_by_alias("ranker", SERVING_ALIAS).version) == 1
    assert [v.serving for v in registry.versions("ranker")] == [True, False]
    with pytest.raises(RegistryError, match="no version 9"):
        registry.get("ranker", 9)


def test_only_uploads_older_than_the_timeout_are_cleaned_up(registry, tmp_path):
    m1 = _saved_model(tmp_path / "m1", 1.0)
    experiment = registry._experiment_id()
    # What a push killed mid-upload leaves: a run marked uploading, no model version. One from
    # yesterday is a killed push; one started a moment ago may be another push still uploading.
    day_ago_ms = int((time.time() - 24 * 3600) * 1000)
    killed = registry.client.create_run(experiment, start_time=day_ago_ms, tags={"ltr.push_state": "uploading"})
    in_progress = registry.client.create_run(experiment, tags={"ltr.push_state": "uploading"})
    assert registry.versions("ranker") == []
    assert registry.register("ranker", m1).version == 1
    assert registry.client.get_run(killed.info.run_id).info.lifecycle_stage == "deleted"
    assert registry.client.get_run(in_progress.info.run_id).info.lifecycle_stage == "active"


def test_identity_is_by_content_not_by_path_and_names_are_checked(registry, tmp_path):
    trainer_output = tmp_path / "trainer" / "Format-Serving"
    first = registry.register("ranker", _saved_model(trainer_output, 1.0))
    assert (first.version, first.newly_registered) == (1, True) and first.fingerprint.startswith("sha256:")
    # Retrained on other data into the same path: other weights, a new version.
    shutil.rmtree(trainer_output)
    second = registry.register("ranker", _saved_model(trainer_output, 5.0))
    assert (second.version, second.newly_registered) == (2, True)
    # The same content from another path is the version holding it, and is served again.
    shutil.copytree(trainer_output, tmp_path / "copy")
    again = registry.register("ranker", str(tmp_path / "copy"))
    assert (again.version, again.newly_registered, again.serving) == (2, False, True)
    registry.set_serving("ranker", 1)
    assert registry.register("ranker", str(tmp_path / "copy")).version == 2
    assert registry.serving_version("ranker") == 2

    # Names are checked before they reach a path or a filter string.
    for name in ("a'b", "../x", "", "x' or name = 'y"):
        with pytest.raises(ValueError, match="model_name"):
            registry.register(name, _saved_model(tmp_path / "m", 1.0))
        with pytest.raises(ValueError, match="model_name"):
            registry.versions(name)
    assert filter_literal("ranker") == "'ranker'"
    assert filter_literal("it's") == '"it\'s"'
    with pytest.raises(ValueError, match="both quote"):
        filter_literal("""'"'""")


def _push(root, source, queue):
    queue.put(open_registry("mlflow", root).register("ranker", source).version)


def test_concurrent_pushes_get_distinct_versions(tmp_path):
    root = str(tmp_path / "registry")
    sources = [_saved_model(tmp_path / f"m{i}", float(i)) for i in range(3)]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [context.Process(target=_push, args=(root, source, queue)) for source in sources]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    assert sorted(queue.get() for _ in processes) == [1, 2, 3]
    assert [v.version for v in open_registry("mlflow", root).versions("ranker")] == [1, 2, 3]
