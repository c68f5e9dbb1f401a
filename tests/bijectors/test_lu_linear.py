"""Tests of calozoo.bijectors.lu_linear: the LU-parametrised invertible linear map."""

import numpy as np
import pytest
import tensorflow as tf

from calozoo.bijectors.lu_linear import LULinear, lu_linear_num_params
from tests.bijectors.helpers import assert_bijective


def randomised(lu: LULinear, seed: int = 0) -> LULinear:
    """The same bijector with every variable moved away from the identity initialisation."""
    rng = np.random.default_rng(seed)
    for variable in lu.trainable_variables:
        variable.assign(variable + rng.normal(scale=0.5, size=variable.shape))
    return lu


def test_identity_initialisation_is_the_identity_with_zero_log_det():
    lu = LULinear(5)
    x = np.random.default_rng(1).normal(size=(4, 5))
    np.testing.assert_allclose(lu.inverse(x).numpy(), x, rtol=0, atol=1e-15)
    np.testing.assert_allclose(lu.inverse_log_det_jacobian(x, event_ndims=1).numpy(), 0.0, atol=1e-12)


def test_bijective_with_exact_log_det():
    lu = randomised(LULinear(6))
    x = np.random.default_rng(2).normal(size=(7, 6))
    assert_bijective(lu, x, event_ndims=1, rtol=1e-10)


def test_log_det_is_the_slogdet_of_the_weight():
    lu = randomised(LULinear(4), seed=3)
    sign, logdet = np.linalg.slogdet(lu.weight().numpy())
    assert sign != 0
    np.testing.assert_allclose(lu.log_abs_det().numpy(), logdet, rtol=1e-12)


def test_parameter_count_is_d_squared_plus_d():
    lu = LULinear(35)
    assert lu_linear_num_params(35) == 35 * 35 + 35 == sum(int(np.prod(v.shape)) for v in lu.trainable_variables)


def test_float32_round_trip():
    lu = randomised(LULinear(8, dtype=tf.float32), seed=4)
    x = np.random.default_rng(5).normal(size=(3, 8)).astype(np.float32)
    back = lu.to_base(lu.to_data(x)[0])[0].numpy()
    np.testing.assert_allclose(back, x, atol=1e-4)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="`features` must be >= 1; got 0"):
        LULinear(0)
