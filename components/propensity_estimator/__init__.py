"""PropensityEstimator: examination propensity per position from the click logs (regression-EM)."""

from components.propensity_estimator.component import PropensityEstimator
from components.propensity_estimator.trainer import RankingTrainer

__all__ = ["PropensityEstimator", "RankingTrainer"]
