"""LU-decomposed 1x1 convolution: initial weight is the stored permutation, round trips and log-det in float64."""

import numpy as np
import tensorflow as tf

from calozoo.bijectors.lu_conv import LUInvertibleConv1x1, lu_conv_num_params
from tests.bijectors.helpers import assert_bijective
from tests.bijectors.image_helpers import Flattened


def test_initial_weight_is_the_channel_permutation():
    conv = LUInvertibleConv1x1(4, seed=3, dtype=tf.float64)
    permutation = conv.permutation.numpy()
    assert sorted(permutation) == [0, 1, 2, 3]
    np.testing.assert_allclose(conv.weight().numpy(), np.eye(4)[permutation], atol=1e-15)
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 4))
    np.testing.assert_allclose(conv.forward(x).numpy(), x[..., permutation], atol=1e-15)
    assert sum(int(np.prod(v.shape)) for v in conv.trainable_variables) == lu_conv_num_params(4) == 20


def _random_conv(seed=0):
    conv = LUInvertibleConv1x1(3, seed=seed, dtype=tf.float64)
    rng = np.random.default_rng(seed)
    for variable in conv.trainable_variables:
        variable.assign(rng.normal(0.0, 0.5, size=variable.shape))
    return conv


def test_lu_conv_round_trip_and_log_det_in_float64():
    conv = _random_conv(1)
    x = np.random.default_rng(2).normal(size=(3, 2 * 2 * 3))
    assert_bijective(Flattened(conv, [2, 2, 3], [2, 2, 3]), x, event_ndims=1)
    # known value: H W log|det W|
    sign, logdet = np.linalg.slogdet(conv.weight().numpy())
    assert np.isclose(float(conv.forward_log_det_jacobian(x.reshape(3, 2, 2, 3), event_ndims=3)), 4 * logdet)


def test_cached_inverse_weight_gives_the_same_inverse():
    conv = _random_conv(4)
    y = np.random.default_rng(5).normal(size=(2, 3, 3, 3))
    cached = conv.inverse_weight()
    np.testing.assert_allclose(cached.numpy() @ conv.weight().numpy(), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(conv.inverse(y, inverse_weight=cached).numpy(), conv.inverse(y).numpy(), atol=1e-12)
