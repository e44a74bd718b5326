"""Training settings: the ``training`` section of the pipeline config.

The pipeline passes them to tuner_fn / run_fn through ``custom_config``
(train/eval steps also through TFX's TrainArgs/EvalArgs).
"""

from __future__ import annotations

import dataclasses
from typing import Any

STRATEGIES = ("none", "mirrored")
# custom_config key: True when the Tuner is off, so training without imported
# hyperparameters fails instead of silently using the defaults.
REQUIRE_HYPERPARAMETERS_KEY = "require_hyperparameters"


@dataclasses.dataclass
class TrainingConfig:
    train_steps: int = 300
    eval_steps: int = 0  # 0: one full pass over the eval split
    batch_size: int = 32  # lists per batch
    list_size: int = 32  # documents per list seen in training
    epochs: int = 3
    strategy: str = "mirrored"
    seed: int = 0

    @classmethod
    def from_custom_config(cls, custom_config: dict[str, Any] | None) -> TrainingConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (custom_config or {}).items() if k in fields})

    def to_custom_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
