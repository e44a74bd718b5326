"""Strategy selection, TF_CONFIG and the local cluster launcher (no training)."""

from __future__ import annotations

import json

import pytest

from modules.training import distribution
from modules.training.local_cluster import ClusterError, run_local_cluster
from modules.training.trainer import TrainJob


def _tf_config(cluster, task_type, index):
    return json.loads(distribution.tf_config_for(cluster, task_type, index))


def test_multi_worker_cluster_uses_loopback_and_worker_zero_is_chief():
    ports = distribution.free_ports(3)
    assert len(set(ports)) == 3
    cluster = distribution.local_cluster_spec("multi_worker", 3, 1, ports)
    assert cluster == {"worker": [f"127.0.0.1:{p}" for p in ports]}
    chiefs = [i for i in range(3) if distribution.is_chief(_tf_config(cluster, "worker", i))]
    assert chiefs == [0]


def test_parameter_server_cluster_has_a_coordinator_workers_and_ps():
    cluster = distribution.local_cluster_spec("parameter_server", 2, 1, [1001, 1002, 1003, 1004])
    assert cluster == {
        "chief": ["127.0.0.1:1001"],
        "worker": ["127.0.0.1:1002", "127.0.0.1:1003"],
        "ps": ["127.0.0.1:1004"],
    }
    assert distribution.is_chief(_tf_config(cluster, "chief", 0))
    assert not distribution.is_chief(_tf_config(cluster, "worker", 0))
    assert not distribution.is_chief(_tf_config(cluster, "ps", 0))
    assert distribution.task(_tf_config(cluster, "ps", 0)) == ("ps", 0)


def test_no_tf_config_means_a_single_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribution.is_chief() and distribution.task() == ("chief", 0)
    assert not distribution.has_cluster()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("multi_worker", 0, 1, []), "workers must be >= 1"),
        (("parameter_server", 1, 0, [1, 2]), "parameter_servers must be >= 1"),
        (("multi_worker", 2, 1, [1]), "needs 2 ports"),
        (("mirrored", 2, 1, [1, 2]), "runs in one process"),
    ],
)
def test_bad_cluster_requests_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        distribution.local_cluster_spec(*args)


def test_bad_tf_config_and_strategy_are_refused(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribution.tf_config()
    monkeypatch.delenv("TF_CONFIG")
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        distribution.make_strategy("multi_worker")
    with pytest.raises(ValueError, match="unknown distribution strategy 'tpu'"):
        distribution.make_strategy("tpu")


def test_a_failing_worker_fails_the_run_with_its_log(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    job = TrainJob(
        train_files=[str(tmp_path / "missing-train")],
        eval_files=[str(tmp_path / "missing-eval")],
        transform_graph_path=str(tmp_path / "no-transform-graph"),
        schema_path=str(tmp_path / "no-schema.pbtxt"),
        serving_model_dir=str(tmp_path / "serving"),
        model_run_dir=str(tmp_path / "run"),
        train_steps=1,
        eval_steps=None,
        custom_config={"strategy": "multi_worker", "workers": 2, "cluster_timeout_s": 120},
    )
    with pytest.raises(ClusterError, match=r"(?s)task worker-\d exited with status 1.*no-schema\.pbtxt"):
        run_local_cluster(job)
    assert sorted(p.name for p in (tmp_path / "run" / "cluster").iterdir()) == ["worker-0.log", "worker-1.log"]
    assert not (tmp_path / "serving").exists()
