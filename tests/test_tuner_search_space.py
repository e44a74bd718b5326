"""The search space: every scorer and every loss builds and trains one step."""

from __future__ import annotations

import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_ranking as tfr

from modules.features import CONTEXT_BLOCK, DOCUMENT_BLOCK, MASK_KEY
from modules.training import hparams
from modules.training.inputs import ModelInputs
from modules.training.model import NDCG_METRIC, build_model, make_loss, ranking_metrics

BATCH, LIST = 4, 5


def _inputs(feature_set) -> ModelInputs:
    return ModelInputs.from_feature_set(feature_set, ids={})


def _batch(feature_set, seed: int = 0):
    rng = np.random.default_rng(seed)
    inputs = _inputs(feature_set)
    features = {
        CONTEXT_BLOCK: rng.normal(size=(BATCH, inputs.context_block)).astype("float32"),
        DOCUMENT_BLOCK: rng.normal(size=(BATCH, LIST, inputs.document_block)).astype("float32"),
    }
    lengths = np.array([5, 3, 1, 4])
    mask = np.arange(LIST)[None, :] < lengths[:, None]
    features[MASK_KEY] = mask
    labels = np.where(mask, rng.integers(0, 5, size=(BATCH, LIST)), -1).astype("float32")
    return features, labels


def test_space_declares_every_scorer_and_more_than_the_basic_losses():
    hp = hparams.search_space(kt.HyperParameters())
    assert set(hp._hps["scorer"][0].values) == set(hparams.SCORERS) == {"dnn", "dasalc", "trees"}
    assert {"softmax_loss", "approx_ndcg_loss", "pairwise_logistic_loss", "list_mle_loss"} < set(hparams.LOSSES)
    assert hp._hps["learning_rate"][0].sampling == "log"
    assert hparams.values(hp) == hparams.DEFAULTS


@pytest.mark.parametrize(("scorer", "batch_norm"), [("dnn", True), ("dasalc", True), ("dasalc", False)])
def test_every_scorer_and_loss_builds_and_trains_one_step(feature_set, scorer, batch_norm):
    """One model per scorer, recompiled with every loss (the build dominates the cost)."""
    tf.keras.utils.set_random_seed(0)
    hp = hparams.fixed(scorer=scorer, batch_norm=batch_norm, hidden_units=32, num_layers=2)
    model = build_model(_inputs(feature_set), hp)
    features, labels = _batch(feature_set)
    losses = hparams.LOSSES if batch_norm else ("softmax_loss",)
    for loss in losses:
        hp.values["loss"] = loss
        model.compile(
            optimizer=tf.keras.optimizers.Adam(0.01), loss=make_loss(hp), metrics=ranking_metrics(), run_eagerly=True
        )
        before = [w.numpy().copy() for w in model.trainable_weights]
        logs = model.train_on_batch(features, labels, return_dict=True)
        assert np.isfinite(logs["loss"]), (scorer, loss, logs)
        assert 0.0 <= logs[NDCG_METRIC] <= 1.0
        changed = [not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights, strict=True)]
        assert any(changed), (scorer, loss)
    scores = model(features, training=False).numpy()
    assert scores.shape == (BATCH, LIST) and np.isfinite(scores).all()


def test_listwise_scorer_lets_documents_see_each_other(feature_set):
    """Changing one document changes the other documents' scores with dasalc, never with dnn."""
    features, _ = _batch(feature_set)
    changed = {k: np.array(v, copy=True) for k, v in features.items()}
    changed[DOCUMENT_BLOCK][0, 1, 0] += 3.0  # list 0, document 1
    for scorer, expect_change in (("dasalc", True), ("dnn", False)):
        tf.keras.utils.set_random_seed(0)
        model = build_model(_inputs(feature_set), hparams.fixed(scorer=scorer, dropout=0.0))
        a = model(features, training=False).numpy()
        b = model(changed, training=False).numpy()
        others = [0, 2, 3, 4]
        assert np.allclose(a[1:], b[1:], atol=1e-5), scorer  # other lists never change
        assert (not np.allclose(a[0, others], b[0, others], atol=1e-5)) == expect_change, scorer


def test_padding_does_not_change_real_scores(feature_set):
    features, _ = _batch(feature_set)
    changed = {k: np.array(v, copy=True) for k, v in features.items()}
    changed[DOCUMENT_BLOCK][2, 1:, :] = 99.0  # list 2 has one real document
    tf.keras.utils.set_random_seed(0)
    model = build_model(_inputs(feature_set), hparams.fixed(scorer="dasalc", dropout=0.0))
    a, b = model(features, training=False).numpy(), model(changed, training=False).numpy()
    assert np.allclose(a[2, 0], b[2, 0], atol=1e-5)


def test_losses_include_lambda_weighted_neural_sort_and_gumbel_variants():
    from modules.training import losses

    assert {
        "softmax_loss+ndcg",
        "pairwise_logistic_loss+ndcg",
        "pairwise_logistic_loss+ndcg2",
        "neural_sort_ndcg_loss",
        "gumbel_neural_sort_ndcg_loss",
        "gumbel_approx_ndcg_loss",
    } <= set(hparams.LOSSES)
    weighted = losses.get("pairwise_logistic_loss+ndcg")
    assert isinstance(weighted._lambda_weight, tfr.keras.losses.NDCGLambdaWeight)
    assert losses.get("pairwise_logistic_loss")._lambda_weight is None
    # The lambda weight changes the loss: pairs at the top of the ideal order weigh more.
    labels = tf.constant([[2.0, 0.0, 1.0, 0.0]])
    scores = tf.constant([[0.1, 0.9, 0.3, 0.2]])
    assert float(weighted(labels, scores)) != pytest.approx(float(losses.get("pairwise_logistic_loss")(labels, scores)))
    # NeuralSort: a perfect order costs less than its reverse; padding (-1) is ignored.
    ndcg = losses.get("neural_sort_ndcg_loss")
    good, bad = tf.constant([[3.0, 1.0, 2.0, 0.0]]), tf.constant([[0.0, 2.0, 1.0, 3.0]])
    assert float(ndcg(labels, good)) < float(ndcg(labels, bad))
    padded = tf.constant([[2.0, 0.0, 1.0, 0.0, -1.0]])
    assert float(ndcg(padded, tf.concat([good, [[50.0]]], 1))) == pytest.approx(float(ndcg(labels, good)), abs=1e-5)
    with pytest.raises(ValueError, match="unknown lambda weight"):
        losses.get("softmax_loss+mrr")


def test_the_portfolio_comes_first_then_seeded_random_proposals(tmp_path):
    from modules.training.config import TunerSettings
    from modules.training.tuner import make_tuner

    def proposals(seed: int) -> list[dict]:
        tuner = make_tuner(TunerSettings(max_trials=6), lambda hp: None, str(tmp_path / str(seed)), seed)
        out = []
        for _ in range(6):
            trial = tuner.oracle.create_trial("t")
            out.append(hparams.values(trial.hyperparameters))
            tuner.oracle.end_trial(trial)  # no score needed for the next proposal
        return out

    first = proposals(3)
    assert first[:3] == hparams.portfolio_values()
    assert first[0] == hparams.DEFAULTS and first[1]["scorer"] == "trees" and first[2]["scorer"] == "dasalc"
    assert len({str(v) for v in first}) == 6  # random proposals after it, no repeats
    assert proposals(3) == first  # seeded
    assert proposals(4)[3:] != first[3:]


@pytest.mark.parametrize("algorithm", ["random", "bayesian", "hyperband"])
def test_a_search_without_trees_never_proposes_them(tmp_path, algorithm):
    """Under a position-bias correction the Tuner passes the neural scorers only: neither the
    portfolio nor any oracle's own proposals may pick the trees (they would drop the correction)."""
    from modules.training.config import TunerSettings
    from modules.training.tuner import make_tuner

    settings = TunerSettings(algorithm=algorithm, max_trials=12, epochs=2)
    tuner = make_tuner(settings, lambda hp: None, str(tmp_path), 0, scorers=hparams.NEURAL_SCORERS)
    scorers = []
    for _ in range(12):
        trial = tuner.oracle.create_trial("t")
        if trial.status != "RUNNING":
            break
        scorers.append(trial.hyperparameters.get("scorer"))
        tuner.oracle.update_trial(trial.trial_id, {"val_ndcg_10": float(len(scorers))})
        tuner.oracle.end_trial(trial)
    assert len(scorers) >= (2 if algorithm == "hyperband" else 4)
    assert "trees" not in scorers
    assert set(scorers) == {"dnn", "dasalc"} or algorithm == "hyperband"
    if algorithm != "hyperband":  # the portfolio, less the trees, comes first
        assert scorers[:2] == ["dnn", "dasalc"]


def test_the_trainer_refuses_trees_under_a_position_bias_correction(tmp_path):
    from modules.training.trainer import TrainJob, train_and_export

    job = TrainJob(
        train_files=[],
        eval_files=[],
        transform_graph_path="unused",
        schema_path="unused",
        serving_model_dir=str(tmp_path / "serving"),
        model_run_dir=str(tmp_path / "run"),
        train_steps=10,
        eval_steps=None,
        custom_config={"position_bias": "ipw"},
        hyperparameters=hparams.fixed(scorer="trees").get_config(),
    )
    with pytest.raises(ValueError, match="position_bias is 'ipw' but the hyperparameters choose the 'trees' scorer"):
        train_and_export(job)


def test_gaussian_input_noise_acts_in_training_only(feature_set):
    features, _ = _batch(feature_set)
    tf.keras.utils.set_random_seed(0)
    model = build_model(_inputs(feature_set), hparams.fixed(input_noise=0.2, dropout=0.0, batch_norm=False))
    assert any(isinstance(layer, tf.keras.layers.GaussianNoise) for layer in _all_layers(model))
    served = model(features, training=False).numpy()
    assert np.allclose(served, model(features, training=False).numpy())  # deterministic when serving
    assert not np.allclose(served, model(features, training=True).numpy(), atol=1e-4)


def _all_layers(layer):
    for child in getattr(layer, "layers", []):
        yield child
        yield from _all_layers(child)


@pytest.mark.parametrize(
    ("schedule", "warmup", "at"),
    [
        ("constant", 0.1, {0: 0.001, 9: 0.01, 50: 0.01, 99: 0.01}),
        ("cosine", 0.0, {0: 0.01, 50: 0.005, 100: 0.0}),
        ("exponential", 0.0, {0: 0.01, 100: 0.001}),
        ("cosine", 0.1, {0: 0.001, 50: 0.005}),
    ],
)
def test_learning_rate_schedules_and_warmup(schedule, warmup, at):
    from modules.training.model import learning_rate

    rate = learning_rate(hparams.fixed(learning_rate=0.01, lr_schedule=schedule, warmup=warmup), train_steps=100)
    for step, expected in at.items():
        value = float(rate(step)) if callable(rate) else rate
        assert value == pytest.approx(expected, abs=2e-4), (step, value)
