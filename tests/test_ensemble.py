"""The Trainer's ensemble: several rankers served as one model scoring their mean."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from modules.features import DOCUMENT_BLOCK, MASK_KEY
from modules.training import hparams
from modules.training.config import TrainingConfig
from modules.training.inputs import ModelInputs
from modules.training.model import EnsembleRanker, build_model, ensemble, make_loss

INPUTS = ModelInputs(context_block=0, document_block=3, context_ids={}, document_ids={})


def _features(seed: int = 0) -> dict[str, tf.Tensor]:
    rng = np.random.default_rng(seed)
    mask = np.ones((2, 5), dtype=bool)
    mask[1, 3:] = False
    return {DOCUMENT_BLOCK: tf.constant(rng.normal(size=(2, 5, 3)), tf.float32), MASK_KEY: tf.constant(mask)}


def _members(count: int) -> list[tf.keras.Model]:
    members = []
    for member in range(count):
        tf.keras.utils.set_random_seed(member)
        members.append(build_model(INPUTS, hparams.fixed(hidden_units=8)))
    return members


def test_the_ensemble_scores_the_members_mean_and_holds_all_their_variables():
    members = _members(3)
    model = ensemble(members, make_loss(hparams.fixed()))
    assert isinstance(model, EnsembleRanker)
    features = _features()
    scores = [member(features, training=False).numpy() for member in members]
    assert not np.allclose(scores[0], scores[1])  # different seeds, different models
    np.testing.assert_allclose(model(features, training=False).numpy(), np.mean(scores, axis=0), atol=1e-6)
    assert len(model.variables) == sum(len(m.variables) for m in members)  # exported with the signatures


def test_one_member_is_the_model_itself():
    (member,) = _members(1)
    assert ensemble([member], make_loss(hparams.fixed())) is member


def test_member_seeds_never_coincide_across_run_seeds():
    members = {seed: {TrainingConfig(seed=seed).ensemble_seed(m) for m in range(3)} for seed in range(10)}
    assert TrainingConfig(seed=4).ensemble_seed(0) == 4  # the first member is the run's seed
    for a in members:
        for b in members:
            if a != b:
                assert not members[a] & members[b], (a, b)


def test_auto_ensemble_trains_several_models_only_on_a_split_replayed_from_memory():
    auto = TrainingConfig()
    assert auto.ensemble == "auto"
    assert auto.ensemble_members(train_split_in_memory=True) == 3
    assert auto.ensemble_members(train_split_in_memory=False) == 1
    # A number is taken as given either way.
    assert TrainingConfig(ensemble=2).ensemble_members(train_split_in_memory=False) == 2
    assert TrainingConfig(ensemble=1).ensemble_members(train_split_in_memory=True) == 1
