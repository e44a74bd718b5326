"""tf.distribute strategies from the training config, and TF_CONFIG helpers.

Strategies: ``none`` (default strategy), ``mirrored`` (all local devices),
``multi_worker`` (MultiWorkerMirroredStrategy: synchronous all-reduce across the
workers in ``TF_CONFIG``), ``parameter_server`` (ParameterServerStrategy: this
process coordinates; variables live on the ``ps`` tasks, steps run on the
``worker`` tasks). On Vertex AI the platform sets ``TF_CONFIG``; locally
``modules.training.local_cluster`` starts the processes with a ``TF_CONFIG`` each.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import tensorflow as tf

from modules.training.config import STRATEGIES

TF_CONFIG_ENV = "TF_CONFIG"
MULTI_PROCESS_STRATEGIES = ("multi_worker", "parameter_server")
LOOPBACK = "127.0.0.1"


def tf_config() -> dict[str, Any]:
    """The parsed ``TF_CONFIG`` of this process ({} when unset)."""
    raw = os.environ.get(TF_CONFIG_ENV, "")
    if not raw.strip():
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"{TF_CONFIG_ENV} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{TF_CONFIG_ENV} must be a JSON object, got {raw!r}")
    return config


def has_cluster(config: dict[str, Any] | None = None) -> bool:
    config = tf_config() if config is None else config
    return bool(config.get("cluster"))


def task(config: dict[str, Any] | None = None) -> tuple[str, int]:
    """(task type, index) of this process; ("chief", 0) outside a cluster."""
    config = tf_config() if config is None else config
    if not has_cluster(config):
        return "chief", 0
    spec = config.get("task") or {}
    return str(spec.get("type", "")), int(spec.get("index", 0))


def is_chief(config: dict[str, Any] | None = None) -> bool:
    """The process that writes the model, metrics and logs.

    ``chief`` (or legacy ``master``) when the cluster has one; otherwise worker 0,
    as MultiWorkerMirroredStrategy itself decides.
    """
    config = tf_config() if config is None else config
    if not has_cluster(config):
        return True
    task_type, index = task(config)
    cluster = config["cluster"]
    if task_type in ("chief", "master"):
        return index == 0
    return task_type == "worker" and index == 0 and not ({"chief", "master"} & set(cluster))


def make_strategy(name: str) -> tf.distribute.Strategy:
    """Creates the strategy. Multi-process ones need ``TF_CONFIG`` and must be
    created before this process runs any other TensorFlow op."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown distribution strategy '{name}' (expected one of {STRATEGIES})")
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if not has_cluster():
        raise ValueError(f"strategy '{name}' needs {TF_CONFIG_ENV} with a cluster (the local launcher sets it)")
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    return tf.distribute.experimental.ParameterServerStrategy(resolver)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on the loopback interface.

    All sockets stay open until every port is chosen, so no port is picked twice;
    another program could still take one before the cluster binds it (rare).
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def local_cluster_spec(strategy: str, workers: int, parameter_servers: int, ports: list[int]) -> dict[str, list[str]]:
    """Cluster of loopback addresses for ``strategy``.

    multi_worker: ``workers`` workers (worker 0 is the chief).
    parameter_server: one chief (the coordinator), ``workers`` workers and
    ``parameter_servers`` ps.
    """
    if workers < 1:
        raise ValueError(f"training.workers must be >= 1, got {workers}")
    if strategy == "multi_worker":
        roles = {"worker": workers}
    elif strategy == "parameter_server":
        if parameter_servers < 1:
            raise ValueError(f"training.parameter_servers must be >= 1, got {parameter_servers}")
        roles = {"chief": 1, "worker": workers, "ps": parameter_servers}
    else:
        raise ValueError(f"strategy '{strategy}' runs in one process; no cluster to build")
    needed = sum(roles.values())
    if len(ports) != needed:
        raise ValueError(f"{strategy} with {roles} needs {needed} ports, got {len(ports)}")
    cluster: dict[str, list[str]] = {}
    it = iter(ports)
    for role, count in roles.items():
        cluster[role] = [f"{LOOPBACK}:{next(it)}" for _ in range(count)]
    return cluster


def tf_config_for(cluster: dict[str, list[str]], task_type: str, index: int) -> str:
    if task_type not in cluster or not 0 <= index < len(cluster[task_type]):
        raise ValueError(f"task {task_type}:{index} is not in the cluster {cluster}")
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})
