"""Beam's portable runner on one machine: a job service and an external SDK worker pool on 127.0.0.1.

``ltr run --beam portable`` runs the Beam components (ElwcExampleGen, Transform)
with ``--runner=PortableRunner`` against Beam's own job service
(``apache_beam.runners.portability.local_job_service_main``, through
``pipeline.beam_job_service`` so that a job gets several workers): the pipeline is
submitted over the Job API, its artifacts are staged, and its stages run in SDK
worker processes that Beam's external worker pool
(``apache_beam.runners.worker.worker_pool_main``, ``--environment_type=EXTERNAL``)
starts, talking to the runner over the Fn API. That is the protocol Flink's and
Dataflow Runner v2's workers speak, so a DoFn that does not pickle or a module
missing on the workers fails here as it would there.

Both services are started on free loopback ports and stopped (with the workers
they started) when the run ends, also when it fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

log = logging.getLogger(__name__)

# Beam's local_job_service_main, with the job's worker count honoured (see the module).
JOB_SERVICE_MODULE = "pipeline.beam_job_service"
WORKER_POOL_MODULE = "apache_beam.runners.worker.worker_pool_main"
# Beam args that select or configure a runner: replaced by the portable runner's.
_RUNNER_FLAGS = (
    "--runner",
    "--direct_running_mode",
    "--direct_num_workers",
    "--job_endpoint",
    "--artifact_endpoint",
    "--environment_type",
    "--environment_config",
)


class BeamServiceError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def portable_beam_args(beam_args: list[str], job_port: int, worker_pool_port: int, workers: int) -> list[str]:
    """``beam_args`` without runner selection, plus the PortableRunner's endpoints.

    ``--direct_num_workers`` is read by the job service's runner (Beam's FnApiRunner):
    it asks the worker pool for that many SDK worker processes and splits bundles among them.
    """
    kept = [arg for arg in beam_args if arg.split("=", 1)[0] not in _RUNNER_FLAGS]
    return kept + [
        "--runner=PortableRunner",
        f"--job_endpoint=127.0.0.1:{job_port}",
        "--environment_type=EXTERNAL",
        f"--environment_config=127.0.0.1:{worker_pool_port}",
        f"--direct_num_workers={workers}",
    ]


@dataclasses.dataclass
class _Service:
    name: str
    process: subprocess.Popen
    port: int
    log_path: str

    def tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return ""


def _python_on_path(scratch: str) -> str:
    """A directory whose ``python`` is this interpreter.

    Beam's worker pool starts each SDK worker as ``python -c ...`` from PATH; without
    this a worker could start under another Python that lacks this project and its lock.
    A wrapper script, not a symlink: a virtual environment is found from the path the
    interpreter is started by, so a symlink elsewhere would start the base Python.
    """
    bin_dir = os.path.join(scratch, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    wrapper = os.path.join(bin_dir, "python")
    with open(wrapper, "w") as handle:
        handle.write(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    os.chmod(wrapper, 0o755)
    return bin_dir


def _start(name: str, args: list[str], port: int, scratch: str, env: dict[str, str]) -> _Service:
    log_path = os.path.join(scratch, f"{name}.log")
    with open(log_path, "w") as out:
        process = subprocess.Popen(
            [sys.executable, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stopping it stops the workers it started
        )
    return _Service(name, process, port, log_path)


def _wait_listening(service: _Service, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if service.process.poll() is not None:
            raise BeamServiceError(
                f"Beam {service.name} exited with {service.process.returncode} before listening on "
                f"127.0.0.1:{service.port}:\n{service.tail()}"
            )
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", service.port)) == 0:
                return
        if time.monotonic() > deadline:
            raise BeamServiceError(f"Beam {service.name} did not listen on 127.0.0.1:{service.port} in {timeout_s} s")
        time.sleep(0.2)


def _stop(service: _Service, timeout_s: float = 15) -> None:
    """SIGTERM to the service's process group (the service and the SDK workers it started), then SIGKILL."""
    if service.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.process.pid, signal.SIGTERM)
        try:
            service.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(service.process.pid, signal.SIGKILL)  # workers left in the group, if any
    service.process.wait()


@dataclasses.dataclass
class PortableServices:
    """The running services, as ``portable_runner`` yields them."""

    args: list[str]  # the Beam pipeline args that submit to them
    job_service: _Service
    worker_pool: _Service

    def workers_started(self) -> list[str]:
        """Ids of the SDK worker processes the pool has started so far (one line each in its log)."""
        with open(self.worker_pool.log_path, errors="replace") as handle:
            return re.findall(r'Starting worker with command .*worker_id=\\?"([^"\\]+)', handle.read())

    def running(self) -> bool:
        return any(s.process.poll() is None for s in (self.job_service, self.worker_pool))


@contextlib.contextmanager
def portable_runner(
    beam_args: list[str], workers: int = 2, startup_timeout_s: float = 120
) -> Iterator[PortableServices]:
    """Starts the job service and the worker pool; yields them with the Beam args that use them; stops both."""
    with tempfile.TemporaryDirectory(prefix="ltr-beam-") as scratch:
        env = dict(os.environ)
        env["PATH"] = _python_on_path(scratch) + os.pathsep + env.get("PATH", "")
        env.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")  # google-api-core's Python EOL notice
        services: list[_Service] = []
        try:
            job_port, pool_port = free_port(), free_port()
            services.append(
                _start(
                    "job service",
                    [
                        "-m",
                        JOB_SERVICE_MODULE,
                        "--port",
                        str(job_port),
                        "--staging_dir",
                        os.path.join(scratch, "staging"),
                    ],
                    job_port,
                    scratch,
                    env,
                )
            )
            services.append(
                _start(
                    "worker pool", ["-m", WORKER_POOL_MODULE, "--service_port", str(pool_port)], pool_port, scratch, env
                )
            )
            for service in services:
                _wait_listening(service, startup_timeout_s)
            args = portable_beam_args(beam_args, job_port, pool_port, workers)
            log.info(
                "Beam portable runner: job service 127.0.0.1:%d, worker pool 127.0.0.1:%d, %d SDK workers",
                job_port,
                pool_port,
                workers,
            )
            yield PortableServices(args, services[0], services[1])
        except BaseException:
            for service in services:
                tail = service.tail()
                if tail:
                    log.error("Beam %s log (last lines):\n%s", service.name, tail)
            raise
        finally:
            for service in reversed(services):
                _stop(service)


@contextlib.contextmanager
def configured_beam(config):
    """``config`` for the run: unchanged for ``beam.runner: direct``; for ``portable``, with the
    services started and ``beam_args`` pointing at them until the block ends."""
    if config.beam.runner != "portable":
        yield config
        return
    with portable_runner(list(config.beam_args), workers=config.beam.workers) as services:
        yield dataclasses.replace(config, beam_args=services.args)
