"""One task of a local training cluster: ``python -m modules.training.worker --job JOB.json``.

Started by ``modules.training.local_cluster`` with ``TF_CONFIG`` in its environment; runs
the same ``train_and_export`` as the TFX executor (or serves, for
ParameterServerStrategy workers and ps).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job", required=True, help="TrainJob JSON written by the launcher")
    args = parser.parse_args(argv)
    from absl import logging

    from modules.training.trainer import TrainJob, run_task

    logging.set_verbosity(logging.INFO)
    with open(args.job) as handle:
        job = TrainJob.from_json(handle.read())
    run_task(job)


if __name__ == "__main__":
    main()
