"""Ranking losses by name: TF-Ranking's Keras losses, lambda-weighted variants, NeuralSort.

``get("pairwise_logistic_loss+ndcg")`` is ``tfr.keras.losses.get`` with an
``NDCGLambdaWeight``. TF-Ranking 0.5.5 implements the NeuralSort / PiRank losses
only for its Estimator API (``losses_impl.NeuralSortCrossEntropyLoss``,
``NeuralSortNDCGLoss``); ``NeuralSortLoss`` puts them behind TF-Ranking's own
Keras loss base class, as ``tfr.keras.losses.ApproxNDCGLoss`` does for ApproxNDCG,
and ``GumbelNeuralSortLoss`` samples the scores with TF-Ranking's ``GumbelSampler``
first, as ``tfr.keras.losses.GumbelApproxNDCGLoss`` does.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_ranking as tfr
from tensorflow_ranking.python import losses_impl

_LAMBDA_WEIGHTS = {
    "ndcg": lambda: tfr.keras.losses.NDCGLambdaWeight(),
    "ndcg2": lambda: tfr.keras.losses.NDCGLambdaWeightV2(),
    "position": lambda: tfr.keras.losses.ListMLELambdaWeight(rank_discount_fn=tfr.keras.utils.log2_inverse),
}

_NEURAL_SORT = {
    "neural_sort_cross_entropy_loss": losses_impl.NeuralSortCrossEntropyLoss,
    "neural_sort_ndcg_loss": losses_impl.NeuralSortNDCGLoss,
}


class NeuralSortLoss(tfr.keras.losses._ListwiseLoss):  # noqa: SLF001 - TF-Ranking's Keras loss base
    """A NeuralSort loss of ``losses_impl`` as a Keras loss (masked by the -1 labels of padding)."""

    def __init__(self, kind: str, temperature: float = 1.0, name: str | None = None):
        super().__init__(name=name or kind, temperature=temperature)
        self._kind = kind
        self._loss = _NEURAL_SORT[kind](name=f"{kind}_impl", temperature=temperature)

    def get_config(self):
        return {**super().get_config(), "kind": self._kind}


class GumbelNeuralSortLoss(NeuralSortLoss):
    """NeuralSort on Gumbel-perturbed scores (TF-Ranking's ``GumbelSampler``, 8 samples)."""

    def __init__(self, kind: str, temperature: float = 1.0, name: str | None = None, seed: int | None = None):
        super().__init__(kind, temperature, name=name or f"gumbel_{kind}")
        self._sampler = losses_impl.GumbelSampler(sample_size=8, seed=seed)

    def __call__(self, y_true, y_pred, sample_weight=None):
        labels, logits, weights = self._sampler.sample(y_true, y_pred, weights=sample_weight)
        return super().__call__(labels, logits, weights)


def get(name: str) -> tf.keras.losses.Loss:
    """The loss named in ``modules.training.hparams.LOSSES``."""
    base, _, weight = name.partition("+")
    if base.startswith("gumbel_") and base[len("gumbel_") :] in _NEURAL_SORT:
        return GumbelNeuralSortLoss(base[len("gumbel_") :])
    if base in _NEURAL_SORT:
        return NeuralSortLoss(base)
    if weight:
        if weight not in _LAMBDA_WEIGHTS:
            raise ValueError(f"unknown lambda weight '{weight}' in loss '{name}' (known: {sorted(_LAMBDA_WEIGHTS)})")
        return tfr.keras.losses.get(base, lambda_weight=_LAMBDA_WEIGHTS[weight]())
    return tfr.keras.losses.get(base)
