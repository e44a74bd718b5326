"""Which trial the Tuner hands to the Trainer: honest about small eval splits.

With few eval lists the best of several trials is partly the luckiest: its eval
NDCG is inflated by selection, and a 10-trial search can pick a configuration that
does worse on held-out lists than the defaults (seen on a 51-list eval split). The
rule, pure logic so it is unit-tested on its own:

- the first trial is the defaults (``hparams.DEFAULTS``, the head of the portfolio);
- with at least ``SMALL_EVAL_LISTS`` eval lists (lists with a relevant document),
  the best trial by eval NDCG@10 is selected;
- with fewer, the best trial is selected only if it beats the defaults by more than
  the bootstrap standard error of the defaults' eval NDCG@10 (the spread of the
  eval metric itself over resampled lists); otherwise the defaults are kept.

``Selection.summary`` is the sentence the Tuner's run line prints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

SMALL_EVAL_LISTS = 200
BOOTSTRAP_RESAMPLES = 1000


@dataclasses.dataclass(frozen=True)
class TrialResult:
    trial_id: str
    score: float  # mean eval NDCG@10 over lists with a relevant document
    per_list: Sequence[float]  # eval NDCG@10 per list (lists without a relevant document left out)
    is_default: bool = False


@dataclasses.dataclass(frozen=True)
class Selection:
    trial_id: str
    best_trial_id: str
    default_trial_id: str | None
    eval_lists: int
    gain: float | None  # best - defaults, eval NDCG@10
    standard_error: float | None  # bootstrap SE of the defaults' eval NDCG@10 (small splits only)
    rule: str  # best | defaults_kept | best_beats_defaults | no_defaults
    summary: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def bootstrap_standard_error(values: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> float:
    """Standard deviation of the mean of ``values`` over ``resamples`` bootstrap resamples (seeded)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size < 2:
        return float("inf")  # one list says nothing about the spread: never trust a gain on it
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    return float(means.std(ddof=1))


def select(trials: Sequence[TrialResult], small_eval_lists: int = SMALL_EVAL_LISTS, seed: int = 0) -> Selection:
    """The trial to train, by the rule in the module docstring."""
    if not trials:
        raise ValueError("no completed trials to select from")
    best = max(trials, key=lambda t: t.score)  # max keeps the first of equal scores
    default = next((t for t in trials if t.is_default), None)
    lists = len(best.per_list)
    if default is None:
        return Selection(
            best.trial_id,
            best.trial_id,
            None,
            lists,
            None,
            None,
            "no_defaults",
            f"best trial {best.trial_id} (no defaults trial to compare with)",
        )
    lists = len(default.per_list)
    gain = best.score - default.score
    common = dict(best_trial_id=best.trial_id, default_trial_id=default.trial_id, eval_lists=lists, gain=gain)
    if best is default:
        return Selection(
            default.trial_id,
            standard_error=None,
            rule="best",
            summary=f"the defaults (trial {default.trial_id}) scored best",
            **common,
        )
    if lists >= small_eval_lists:
        return Selection(
            best.trial_id,
            standard_error=None,
            rule="best",
            summary=f"best trial {best.trial_id} ({lists} eval lists >= {small_eval_lists})",
            **common,
        )
    se = bootstrap_standard_error(default.per_list, seed=seed)
    if gain > se:
        return Selection(
            best.trial_id,
            standard_error=se,
            rule="best_beats_defaults",
            summary=f"trial {best.trial_id}: beats the defaults by {gain:+.4f} > bootstrap SE "
            f"{se:.4f} ({lists} eval lists < {small_eval_lists})",
            **common,
        )
    return Selection(
        default.trial_id,
        standard_error=se,
        rule="defaults_kept",
        summary=f"defaults kept: best trial {best.trial_id} is {gain:+.4f}, within the bootstrap SE "
        f"{se:.4f} of {lists} eval lists (< {small_eval_lists})",
        **common,
    )
