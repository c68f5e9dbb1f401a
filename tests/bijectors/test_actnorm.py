"""ActNorm: data-dependent initialisation, log-det against autodiff in float64, initialised only once."""

import numpy as np
import tensorflow as tf

from calozoo.bijectors.actnorm import ActNorm
from tests.bijectors.helpers import assert_bijective
from tests.bijectors.image_helpers import Flattened


def test_data_dependent_init_standardises_each_channel():
    x = np.random.default_rng(0).normal([1.0, -5.0, 30.0], [0.5, 2.0, 7.0], size=(256, 3, 4, 3))
    norm = ActNorm(3, dtype=tf.float64)
    np.testing.assert_array_equal(norm.forward(x).numpy(), x)  # identity before initialisation
    norm.initialize(x)
    z = norm.forward(x).numpy()
    np.testing.assert_allclose(z.mean(axis=(0, 1, 2)), 0.0, atol=1e-9)
    np.testing.assert_allclose(z.std(axis=(0, 1, 2)), 1.0, rtol=1e-5)
    before = norm.log_scale.numpy().copy()
    norm.initialize(x * 10.0)  # already initialised: no change
    np.testing.assert_array_equal(norm.log_scale.numpy(), before)


def test_actnorm_round_trip_and_log_det_in_float64():
    rng = np.random.default_rng(1)
    norm = ActNorm(2, dtype=tf.float64)
    norm.initialize(rng.normal(2.0, 3.0, size=(50, 2, 3, 2)))
    x = rng.normal(size=(4, 2 * 3 * 2))
    assert_bijective(Flattened(norm, [2, 3, 2], [2, 3, 2]), x, event_ndims=1)
    # known value: H W sum(log_scale)
    expected = 6 * norm.log_scale.numpy().sum()
    assert np.isclose(float(norm.forward_log_det_jacobian(x.reshape(4, 2, 3, 2), event_ndims=3)), expected)
