"""Classifier split, calibration and metrics; fast settings on small samples."""

import dataclasses
import math

import numpy as np
import pytest

from calozoo.evaluation.classifiers import (
    FAST_SETTINGS,
    ClassifierSettings,
    classifier_metrics,
    hgb_auc,
    split_sizes,
    train_and_score,
)

TINY = dataclasses.replace(FAST_SETTINGS, width=32, epochs=8, batch_size=64)


def test_split_sizes_follow_the_official_proportions():
    assert split_sizes(100_000, "2") == (60_000, 20_000, 20_000)
    assert split_sizes(121_000, "1-photons") == (80_000, 20_000, 21_000)
    assert split_sizes(2000, "3") == (1200, 400, 400)
    with pytest.raises(ValueError, match="too few"):
        split_sizes(10, "2")


def test_metrics_of_perfect_and_useless_predictions():
    y = np.tile([0.0, 1.0], 200)
    perfect = classifier_metrics(y * 0.8 + 0.1, y, y * 0.8 + 0.1, y)
    assert perfect["auc"] == 1.0 and perfect["accuracy"] == 1.0
    assert perfect["jsd"] == pytest.approx(1.0, abs=1e-5)      # calibrated to 1e-6 / 1 - 1e-6
    constant = classifier_metrics(np.full(400, 0.3), y, np.full(400, 0.3), y)
    assert constant["auc"] == 0.5
    assert constant["jsd"] == pytest.approx(0.0, abs=1e-12)     # calibrated to 0.5: BCE = ln 2


def test_identical_inputs_give_auc_near_one_half():
    x = np.random.default_rng(0).normal(size=(600, 6))
    result = train_and_score(x, x.copy(), "2", TINY, seed=3)
    assert abs(result["auc"] - 0.5) < 0.08
    assert result["split"] == [360, 120, 120]


def test_separated_inputs_give_high_auc_and_runs_are_seeded():
    rng = np.random.default_rng(1)
    gen, ref = rng.normal(0.0, 1.0, (600, 6)), rng.normal(1.0, 1.0, (600, 6))
    first = train_and_score(gen, ref, "2", TINY, seed=5)
    assert first["auc"] > 0.9 and first["jsd"] > 0.3
    assert train_and_score(gen, ref, "2", TINY, seed=5)["auc"] == first["auc"]


def test_unequal_counts_and_bad_settings_raise():
    with pytest.raises(ValueError, match="as many generated as reference showers; got 100 and 90"):
        train_and_score(np.zeros((100, 2)), np.zeros((90, 2)), "2", TINY)
    with pytest.raises(ValueError, match="ClassifierSettings.epochs must be >= 1; got 0"):
        ClassifierSettings(epochs=0)


def test_hgb_auc_separates_shifted_features_only():
    rng = np.random.default_rng(2)
    same = hgb_auc(rng.normal(size=(300, 4)), rng.normal(size=(300, 4)), seed=0)
    shifted = hgb_auc(rng.normal(size=(300, 4)), rng.normal(1.5, 1.0, size=(300, 4)), seed=0)
    assert abs(same["auc_mean"] - 0.5) < 0.08 and len(same["fold_aucs"]) == 5
    assert shifted["auc_mean"] > 0.9
    assert math.isfinite(shifted["auc_std"])
