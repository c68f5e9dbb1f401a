"""Tests of calozoo.training.schedules: the multistep schedule (the DS3 iCaloFlow recipe)."""

import numpy as np
import pytest

from calozoo.training.schedules import make_schedule


def test_multistep_decays_at_fractions_of_the_run():
    schedule = make_schedule({"name": "multistep", "lr": 1e-4, "milestone_fractions": [0.5, 0.75], "gamma": 0.5}, 100)
    values = [float(schedule(step)) for step in (0, 50, 51, 75, 76, 99)]
    np.testing.assert_allclose(values, [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5, 2.5e-5], rtol=1e-6)


def test_multistep_rejects_milestones_outside_the_run():
    with pytest.raises(ValueError, match=r"`milestone_fractions` must lie in \(0, 1\); got \[1.5\]"):
        make_schedule({"name": "multistep", "lr": 1e-4, "milestone_fractions": [1.5], "gamma": 0.5}, 100)


def test_cosine_anneals_from_lr_to_zero_over_the_run():
    schedule = make_schedule({"name": "cosine", "lr": 1e-3}, 100)
    values = [float(schedule(step)) for step in (0, 50, 100)]
    assert abs(values[0] - 1e-3) < 1e-9 and abs(values[1] - 5e-4) < 1e-8 and values[2] < 1e-9


def test_exponential_reaches_the_final_factor_at_the_end_of_the_run():
    """ConvL2LFlow's energy flow: Adam 1e-3 decaying to 3e-3 of it over the run."""
    schedule = make_schedule({"name": "exponential", "lr": 1e-3, "final_factor": 3e-3}, 2000)
    np.testing.assert_allclose([float(schedule(0)), float(schedule(1000)), float(schedule(2000))],
                               [1e-3, 1e-3 * 3e-3**0.5, 3e-6], rtol=1e-5)
    with pytest.raises(ValueError, match="`final_factor` must lie in"):
        make_schedule({"name": "exponential", "lr": 1e-3, "final_factor": 0.0}, 10)
