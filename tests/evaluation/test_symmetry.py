"""Tests of calozoo.evaluation.symmetry: the alpha-symmetry check behind the augmentation."""

import numpy as np
import pytest

from calozoo.data.geometry import load_geometry
from calozoo.evaluation.symmetry import alpha_symmetry_check

GEOMETRY = load_geometry("2")


def _showers(n, seed, weight=None):
    """Random DS2 showers; `weight` (16,) multiplies each alpha bin's energy (a broken symmetry)."""
    rng = np.random.default_rng(seed)
    showers = rng.exponential(size=(n, 45, 16, 9)) * (rng.uniform(size=(n, 45, 16, 9)) < 0.2)
    if weight is not None:
        showers = showers * np.asarray(weight)[None, None, :, None]
    return showers.reshape(n, -1)


def test_a_symmetric_sample_passes():
    result = alpha_symmetry_check(_showers(3000, 0), GEOMETRY)
    assert result.n_alpha == 16 and result.ndf == 15 and result.n_showers == 3000
    assert result.p_value > 0.01
    assert abs(result.dipole_cos) < 4 * result.dipole_cos_error and abs(result.dipole_sin) < 4 * result.dipole_sin_error


def test_a_two_percent_excess_in_one_bin_is_found():
    weight = np.ones(16)
    weight[3] = 1.05
    result = alpha_symmetry_check(_showers(3000, 1, weight), GEOMETRY)
    assert result.p_value < 1e-4
    assert result.max_relative_deviation > 0.02


def test_empty_showers_are_skipped_and_ds1_is_refused():
    showers = _showers(500, 2)
    showers[:10] = 0
    assert alpha_symmetry_check(showers, GEOMETRY).n_showers == 490
    with pytest.raises(ValueError, match="one \\(n_alpha, n_r\\) binning"):
        alpha_symmetry_check(np.ones((3, 368)), load_geometry("1-photons"))
