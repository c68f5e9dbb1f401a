"""FPD, KPD and PRDC against closed forms and brute-force definitions."""

import numpy as np
import pytest

from calozoo.evaluation.distances import (
    _unbiased_mmd2,
    fpd,
    frechet_distance,
    kpd,
    normalise_by_reference,
    prdc,
    prdc_inputs,
)


def test_frechet_distance_of_diagonal_gaussians():
    mean_1, mean_2 = np.array([0.0, 1.0]), np.array([2.0, 1.0])
    var_1, var_2 = np.array([1.0, 4.0]), np.array([9.0, 1.0])
    expected = 4.0 + np.sum((np.sqrt(var_1) - np.sqrt(var_2)) ** 2)
    assert frechet_distance(mean_1, np.diag(var_1), mean_2, np.diag(var_2)) == pytest.approx(expected, rel=1e-10)


def test_fpd_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    ref, gen = rng.normal(size=(4000, 3)), rng.normal(size=(4000, 3))
    kwargs = dict(min_samples=500, max_samples=2000, num_batches=4, num_points=4, normalise=False)
    same, _ = fpd(ref, gen, **kwargs)
    shifted, _ = fpd(ref, gen + np.array([1.0, 0.0, 0.0]), **kwargs)
    assert same < 0.01
    assert shifted == pytest.approx(1.0, abs=0.1)


def test_weighted_mmd_equals_the_explicit_unbiased_estimate():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
    wx, wy = np.array([1.0, 2, 1, 3, 1, 1, 2]), np.array([2.0, 1, 1, 1, 3])
    xs, ys = np.repeat(x, wx.astype(int), axis=0), np.repeat(y, wy.astype(int), axis=0)

    def k(a, b):
        return (a @ b.T / 3 + 1.0) ** 4

    n, m = len(xs), len(ys)
    explicit = ((k(xs, xs).sum() - np.trace(k(xs, xs))) / (n * (n - 1))
                + (k(ys, ys).sum() - np.trace(k(ys, ys))) / (m * (m - 1)) - 2 * k(xs, ys).mean())
    assert _unbiased_mmd2(x, wx, y, wy) == pytest.approx(explicit, rel=1e-10)


def test_kpd_separates_shifted_samples():
    rng = np.random.default_rng(2)
    ref, gen = rng.normal(size=(1000, 4)), rng.normal(size=(1000, 4))
    same, _ = kpd(ref, gen, num_batches=5, batch_size=1000)
    shifted, _ = kpd(ref, gen + 1.0, num_batches=5, batch_size=1000)
    assert abs(same) < 0.005 < shifted


def test_normalisation_uses_reference_maxima():
    ref, gen = normalise_by_reference(np.array([[2.0, 0.0], [-4.0, 0.0]]), np.array([[8.0, 3.0]]))
    np.testing.assert_allclose(ref, [[0.5, 0.0], [-1.0, 0.0]])
    np.testing.assert_allclose(gen, [[2.0, 3.0]])


def _brute_force_prdc(real, fake, k):
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=-1)
    d_ff = np.linalg.norm(fake[:, None] - fake[None], axis=-1)
    d_rf = np.linalg.norm(real[:, None] - fake[None], axis=-1)
    r_real, r_fake = np.sort(d_rr, axis=1)[:, k], np.sort(d_ff, axis=1)[:, k]
    return {"precision": (d_rf < r_real[:, None]).any(axis=0).mean(),
            "recall": (d_rf < r_fake[None, :]).any(axis=1).mean(),
            "density": (d_rf < r_real[:, None]).sum(axis=0).mean() / k,
            "coverage": (d_rf.min(axis=1) < r_real).mean()}


def test_prdc_matches_brute_force_with_chunks():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(120, 5)), rng.normal(0.3, 1.2, size=(90, 5))
    result = prdc(real, fake, nearest_k=5, chunk=17)
    for key, value in _brute_force_prdc(real, fake, 5).items():
        assert result[key] == pytest.approx(value), key
    assert not result["subsampled"]
    far = prdc(real, fake + 100.0, nearest_k=5)
    assert far["precision"] == far["recall"] == far["coverage"] == 0.0


def test_prdc_subsamples_and_inputs():
    rng = np.random.default_rng(4)
    result = prdc(rng.normal(size=(300, 3)), rng.normal(size=(200, 3)), max_samples=100)
    assert result["subsampled"] and result["n_real"] == result["n_fake"] == 100
    np.testing.assert_allclose(prdc_inputs(np.array([[0.0, 10.0]])), [[-1.0, 1.0]])
    with pytest.raises(ValueError, match="more than 5 rows"):
        prdc(np.zeros((5, 2)), np.zeros((9, 2)))
