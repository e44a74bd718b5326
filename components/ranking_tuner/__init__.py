"""TFX Tuner with the number of trials as an execution (and runtime) parameter."""

from components.ranking_tuner.component import RankingTuner

__all__ = ["RankingTuner"]
