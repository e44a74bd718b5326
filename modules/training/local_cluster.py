"""Runs multi-process training on this machine: one process per task, loopback only.

``run_fn`` calls this for ``multi_worker`` / ``parameter_server`` when no
``TF_CONFIG`` is set. Every task (also the chief) is a fresh ``python -m
modules.training.worker`` process: a multi-process strategy must be created before the
process runs any TensorFlow op, which the TFX executor process (it already ran
Transform and the Tuner) cannot promise. Addresses are 127.0.0.1 ports chosen
free; the whole cluster is killed after ``training.cluster_timeout_s``.
Each task's output goes to ``<model_run>/cluster/<task>-<index>.log``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from absl import logging

from modules.training import distribution

LOG_DIR = "cluster"
_TAIL_CHARS = 4000


class ClusterError(RuntimeError):
    """A task of the local cluster failed or timed out; the message holds its log tail."""


def _tail(path: str) -> str:
    try:
        with open(path, errors="replace") as handle:
            return handle.read()[-_TAIL_CHARS:]
    except OSError:
        return "<no log>"


def _stop(processes: list[tuple[str, subprocess.Popen, str]]) -> None:
    """Terminates the processes this launcher started (by their handles), then kills stragglers."""
    for _, process, _ in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 10
    for _, process, _ in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_local_cluster(job) -> None:
    """Starts the cluster for ``job`` (a ``modules.training.trainer.TrainJob``), waits for it, raises on failure."""
    config = job.config
    tasks_needed = config.workers + (1 + config.parameter_servers if config.strategy == "parameter_server" else 0)
    cluster = distribution.local_cluster_spec(
        config.strategy, config.workers, config.parameter_servers, distribution.free_ports(tasks_needed)
    )
    # Tasks that must finish: all workers (multi_worker) or the coordinator (parameter_server).
    finishing = {"worker"} if config.strategy == "multi_worker" else {"chief"}
    log_dir = os.path.join(job.model_run_dir, LOG_DIR)
    os.makedirs(log_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ltr-cluster-") as scratch:
        job_path = os.path.join(scratch, "job.json")
        with open(job_path, "w") as handle:
            handle.write(job.to_json())
        processes: list[tuple[str, subprocess.Popen, str]] = []
        try:
            for task_type, addresses in cluster.items():
                for index in range(len(addresses)):
                    name = f"{task_type}-{index}"
                    log_path = os.path.join(log_dir, f"{name}.log")
                    env = dict(os.environ)
                    env[distribution.TF_CONFIG_ENV] = distribution.tf_config_for(cluster, task_type, index)
                    with open(log_path, "wb") as log:
                        process = subprocess.Popen(
                            [sys.executable, "-m", "modules.training.worker", "--job", job_path],
                            env=env,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    processes.append((name, process, log_path))
            logging.info("Local %s cluster %s started; logs in %s", config.strategy, cluster, log_dir)
            _wait(processes, finishing, config.cluster_timeout_s)
        finally:
            _stop(processes)
    if not os.path.exists(os.path.join(job.serving_model_dir, "saved_model.pb")):
        raise ClusterError(f"the local cluster finished but the chief exported no model to {job.serving_model_dir}")


def _role(name: str) -> str:
    return name.rsplit("-", 1)[0]


def _wait(processes: list[tuple[str, subprocess.Popen, str]], finishing: set[str], timeout_s: int) -> None:
    """Returns when every task of a ``finishing`` role exited 0; raises on any failure or the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        for name, process, log_path in processes:
            code = process.poll()
            if code is None:
                continue
            if code != 0:
                raise ClusterError(f"task {name} exited with status {code}; log {log_path}:\n{_tail(log_path)}")
            if _role(name) not in finishing:
                raise ClusterError(f"task {name} ended before training finished; log {log_path}:\n{_tail(log_path)}")
        if all(process.poll() == 0 for name, process, _ in processes if _role(name) in finishing):
            return
        if time.monotonic() > deadline:
            running = [name for name, process, _ in processes if process.poll() is None]
            raise ClusterError(
                f"local cluster timed out after {timeout_s} s (training.cluster_timeout_s); still running: {running}"
            )
        time.sleep(0.5)
