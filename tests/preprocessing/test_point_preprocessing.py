"""Tests of the frozen statistics and the dequantisations of calozoo.preprocessing (CaloPointFlow, MODELS.md 4.1)."""

import numpy as np
import pytest
import tensorflow as tf

from calozoo.preprocessing import (
    CDFDequantizer,
    FrozenMinMax,
    FrozenStandardizer,
    inverse_probit,
    polar_to_unit_square,
    probit,
    uniform_dequantize,
    uniform_quantize,
    unit_square_to_polar,
)


def test_standardizer_statistics_and_inverse():
    rng = np.random.default_rng(0)
    values = rng.normal([3.0, -1.0], [2.0, 0.5], size=(5000, 2))
    standardizer = FrozenStandardizer(2, tf.float64)
    standardizer.adapt(values)
    scaled = standardizer.forward(values).numpy()
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(standardizer.inverse(scaled).numpy(), values, rtol=1e-12)
    assert not standardizer.trainable_variables and len(standardizer.variables) == 2  # frozen, but saved


def test_min_max_maps_the_training_range_to_the_unit_interval():
    scaler = FrozenMinMax(1, tf.float64)
    scaler.adapt(np.array([[0.25], [0.5], [2.25]]))
    np.testing.assert_allclose(scaler.forward(np.array([[0.25], [2.25], [1.25]])).numpy(), [[0.0], [1.0], [0.5]])
    with pytest.raises(ValueError, match="empty"):
        scaler.adapt(np.zeros((0, 1)))


def test_probit_inverts_and_clips():
    p = tf.constant([1e-3, 0.2, 0.5, 0.9], tf.float64)
    np.testing.assert_allclose(inverse_probit(probit(p)).numpy(), p.numpy(), rtol=1e-12)
    assert np.isfinite(probit(tf.constant([0.0, 1.0], tf.float64)).numpy()).all()


def test_cdf_dequantization_round_trip_and_marginals():
    rng = np.random.default_rng(1)
    values = np.stack([rng.choice(5, size=20000, p=[0.1, 0.4, 0.3, 0.2, 0.0]), rng.integers(0, 3, 20000)], axis=-1)
    dequantizer = CDFDequantizer([5, 3], tf.float64)
    dequantizer.adapt(values)
    np.testing.assert_allclose(dequantizer.cdfs[0].numpy()[:4], [0.0, 0.1, 0.5, 0.8], atol=0.01)
    y = dequantizer.forward(values, rng.uniform(size=values.shape)).numpy()
    # with the empirical CDF the dequantised values are standard normal
    assert abs(y[:, 0].mean()) < 0.03 and abs(y[:, 0].std() - 1.0) < 0.03
    np.testing.assert_array_equal(dequantizer.inverse(y).numpy(), values)
    # values far in the tails map to the first and the last bin
    np.testing.assert_array_equal(dequantizer.inverse(np.array([[-9.0, 9.0]])).numpy(), [[0, 2]])


def test_uniform_dequantization_and_polar_square_round_trip():
    rng = np.random.default_rng(2)
    sizes = [45, 16, 9]
    k = np.stack([rng.integers(0, s, 1000) for s in sizes], axis=-1)
    x = uniform_dequantize(k, tf.constant(rng.uniform(size=k.shape)), sizes)
    np.testing.assert_array_equal(uniform_quantize(x, sizes).numpy(), k)
    alpha, r = x[:, 1], x[:, 2]
    square_x, square_y = polar_to_unit_square(alpha, r)
    assert square_x.numpy().min() >= 0.0 and square_y.numpy().max() <= 1.0
    alpha_back, r_back = unit_square_to_polar(square_x, square_y)
    np.testing.assert_allclose(alpha_back.numpy(), alpha.numpy(), atol=1e-12)
    np.testing.assert_allclose(r_back.numpy(), r.numpy(), atol=1e-12)
