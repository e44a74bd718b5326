"""Beam's local job service (``local_job_service_main``), with its runner's worker count taken from the job.

Beam 2.59's ``local_job_service.BeamJob`` runs each submitted job with an
``FnApiRunner`` that always asks the environment for one SDK worker: the job's
``--direct_num_workers`` is read only on the DirectRunner's own path
(``FnApiRunner.run_pipeline``), not on the Job API path (``run_via_runner_api``).
This entry point runs Beam's job service unchanged except that the runner asks
the external worker pool for ``--direct_num_workers`` workers and splits each
stage's bundles among them, as a Flink or Dataflow job has several workers.

Usage: ``python -m pipeline.beam_job_service --port N [--staging_dir DIR]`` (the
flags of ``apache_beam.runners.portability.local_job_service_main``).
"""

from __future__ import annotations

import sys

from apache_beam.options import pipeline_options
from apache_beam.portability.api import beam_job_api_pb2
from apache_beam.runners.portability import local_job_service, local_job_service_main
from apache_beam.runners.portability.fn_api_runner import fn_runner


def _invoke_runner(self: local_job_service.BeamJob):
    """``BeamJob._invoke_runner`` of Beam 2.59, plus the worker count from the job's options."""
    self.set_state(beam_job_api_pb2.JobState.RUNNING)
    options = self.pipeline_options()
    runner = fn_runner.FnApiRunner(provision_info=self._provision_info)
    # Options arrive through the Job API as a struct, so the number may be a string or a float.
    workers = options.view_as(pipeline_options.DirectOptions).direct_num_workers
    runner._num_workers = max(1, int(float(workers or 1)))
    return runner.run_via_runner_api(self._pipeline_proto, options)


def main(argv: list[str]) -> None:
    local_job_service.BeamJob._invoke_runner = _invoke_runner
    local_job_service_main.run(argv[1:])


if __name__ == "__main__":
    main(sys.argv)
