"""tuner.budget (config, preflight) and the small-data selection rule (pure logic)."""

from __future__ import annotations

import numpy as np
import pytest

from modules.training import selection
from modules.training.config import TUNER_BUDGETS, TunerSettings
from pipeline import cli
from pipeline.config import ConfigError, config_from_dict, load_config


@pytest.mark.parametrize("budget", sorted(TUNER_BUDGETS))
def test_each_budget_sets_trials_steps_and_epochs(tmp_path, budget):
    path = tmp_path / "c.yaml"
    path.write_text(f"tuner:\n  budget: {budget}\n")
    tuner = load_config(path).tuner
    assert (tuner.max_trials, tuner.train_steps, tuner.epochs) == TUNER_BUDGETS[budget]
    # What the Tuner module reads back from custom_config is the same.
    again = TunerSettings.from_custom_config({"tuner": {"budget": budget}})
    assert (again.max_trials, again.train_steps, again.epochs) == TUNER_BUDGETS[budget]


def test_default_budget_is_the_portfolio_briefly_and_large_is_much_bigger():
    default = load_config().tuner
    assert default.budget == "default" and (default.max_trials, default.train_steps) == (3, 120)
    small, large = TUNER_BUDGETS["small"], TUNER_BUDGETS["large"]
    assert small[0] * small[1] < default.max_trials * default.train_steps < large[0] * large[1]


def test_explicit_keys_win_over_the_budget():
    config = config_from_dict({"tuner": {"budget": "large", "max_trials": 5}})
    assert config.tuner.max_trials == 5
    assert config.tuner.train_steps == TUNER_BUDGETS["large"][1]


def test_a_bad_budget_is_one_line_naming_the_file_and_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("tuner:\n  budget: huge\n")
    with pytest.raises(ConfigError, match=r"c.yaml: 'tuner.budget' = 'huge' must be one of small, default, large"):
        load_config(path)


def test_ltr_run_refuses_a_bad_budget_before_running_anything(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(f"tuner:\n  budget: overnight\npipeline_root: {tmp_path / 'p'}\n")
    code = cli.main(["run", "--config", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "'tuner.budget' = 'overnight' must be one of small, default, large" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()


def _trial(trial_id, per_list, is_default=False):
    return selection.TrialResult(trial_id, float(np.mean(per_list)), list(per_list), is_default)


def test_small_eval_split_keeps_the_defaults_when_the_gain_is_within_the_standard_error():
    rng = np.random.default_rng(0)
    default = rng.uniform(0.3, 0.9, size=50)  # 50 lists: SE of the mean ~0.024
    chosen = selection.select([_trial("0", default, True), _trial("1", default + 0.01), _trial("2", default - 0.05)])
    assert chosen.rule == "defaults_kept" and chosen.trial_id == "0" and chosen.best_trial_id == "1"
    assert chosen.gain == pytest.approx(0.01)
    assert chosen.standard_error == pytest.approx(np.std(default, ddof=1) / np.sqrt(50), rel=0.15)
    assert "defaults kept" in chosen.summary and "50 eval lists" in chosen.summary


def test_small_eval_split_takes_a_trial_that_beats_the_defaults_by_more_than_the_standard_error():
    rng = np.random.default_rng(1)
    default = rng.uniform(0.3, 0.9, size=50)
    chosen = selection.select([_trial("0", default, True), _trial("1", np.minimum(default + 0.1, 1.0))])
    assert chosen.rule == "best_beats_defaults" and chosen.trial_id == "1"
    assert chosen.gain > chosen.standard_error


def test_large_eval_split_takes_the_best_trial_even_by_a_hair():
    default = np.linspace(0.2, 0.8, selection.SMALL_EVAL_LISTS)
    chosen = selection.select([_trial("0", default, True), _trial("1", default + 0.001)])
    assert chosen.rule == "best" and chosen.trial_id == "1" and chosen.standard_error is None


def test_the_defaults_winning_or_missing_and_degenerate_splits():
    default = [0.5, 0.6, 0.7]
    assert selection.select([_trial("0", default, True), _trial("1", [0.1, 0.2, 0.3])]).trial_id == "0"
    no_default = selection.select([_trial("3", [0.1]), _trial("4", [0.9])])
    assert no_default.rule == "no_defaults" and no_default.trial_id == "4"
    # One eval list says nothing about the spread: the defaults stay.
    one = selection.select([_trial("0", [0.5], True), _trial("1", [0.9])])
    assert one.trial_id == "0" and one.standard_error == float("inf")
    with pytest.raises(ValueError, match="no completed trials"):
        selection.select([])


def test_bootstrap_standard_error_is_seeded_and_close_to_the_analytic_one():
    values = np.random.default_rng(2).normal(0.5, 0.2, size=400)
    a = selection.bootstrap_standard_error(values, seed=5)
    assert a == selection.bootstrap_standard_error(values, seed=5)
    assert a == pytest.approx(0.2 / np.sqrt(400), rel=0.1)
