"""Evaluator for ranking models on ELWC data: NDCG@k and MRR, and a blessing gate."""

from components.ranking_evaluator.component import RankingEvaluator

__all__ = ["RankingEvaluator"]
