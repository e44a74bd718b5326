"""ServingCheck: loads the candidate in a fresh TensorFlow-only process and sends it real requests.

What TFX's InfraValidator does with a TF Serving binary or container, without
either (neither exists on a plain build machine): the candidate SavedModel is
loaded by a new Python process that imports TensorFlow and TF Serving's request
protos only, as ``tensorflow_model_server`` would load it (no project code, no
custom op libraries). It answers warmup requests built from real eval lists on
both signatures (``serving_default`` on serialized ELWC, ``predict_tensors`` on
plain tensors); every score must be finite and of the right shape. p50/p99
latency of one list of 10/100/1,000 documents is recorded on the output. A
failure marks the InfraBlessing not blessed, with the reason, and the
RegistryPusher then registers nothing. When it passes, the model is copied with
the same requests as ``assets.extra/tf_serving_warmup_requests`` (TF Serving's
warmup format, ``PredictionLog`` records), and that copy is what gets pushed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts

from components.serving_check import executor
from components.serving_check.spec import ServingCheckSpec

DEFAULT_LATENCY_LIST_SIZES = (10, 100, 1000)


class ServingCheck(base_component.BaseComponent):
    SPEC_CLASS = ServingCheckSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        examples: types.BaseChannel,
        schema: types.BaseChannel,
        model_blessing: types.BaseChannel | None = None,
        split: str = "eval",
        batch_lists: int = 8,
        latency_list_sizes: Sequence[int] = DEFAULT_LATENCY_LIST_SIZES,
        latency_repeats: int = 50,
        timeout_s: int = 600,
        model_name: str = "ranker",
    ):
        super().__init__(
            spec=ServingCheckSpec(
                model=model,
                examples=examples,
                schema=schema,
                model_blessing=model_blessing,
                split=split,
                batch_lists=batch_lists,
                latency_list_sizes=json.dumps([int(n) for n in latency_list_sizes]),
                latency_repeats=latency_repeats,
                timeout_s=timeout_s,
                model_name=model_name,
                blessing=types.Channel(type=standard_artifacts.InfraBlessing),
            )
        )
