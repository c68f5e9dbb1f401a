"""Image RQS coupling: identity at initialisation, round trips and log-det against autodiff in float64."""

import numpy as np
import tensorflow as tf

from calozoo.bijectors.image_coupling import ImageRQSCoupling
from calozoo.bijectors.rq_spline import SplineSettings
from calozoo.bijectors.unet import UNet
from tests.bijectors.helpers import assert_bijective
from tests.bijectors.image_helpers import Flattened

SPLINE = SplineSettings(10, 15.0, 1e-3, 1e-3, 1e-3)


def _coupling(context_channels=1):
    coupling = ImageRQSCoupling(4, None, SPLINE, dtype=tf.float64)
    coupling.conditioner = UNet(2 + context_channels, coupling.num_conditioner_outputs, hidden=4,
                                down_factors=((3, 2),), seed=0, dtype=tf.float64)
    return coupling


def test_zero_initialised_coupling_is_the_identity():
    coupling = _coupling()
    x = np.random.default_rng(0).normal(0.0, 5.0, size=(3, 3, 4, 4))
    context = np.random.default_rng(1).normal(size=(3, 3, 4, 1))
    z, logdet = coupling.forward_and_log_det(x, context)
    np.testing.assert_allclose(z.numpy(), x, atol=1e-12)
    np.testing.assert_allclose(logdet.numpy(), 0.0, atol=1e-10)
    assert coupling.transform_channels == 2 and coupling.num_conditioner_outputs == 58


def test_trained_like_coupling_round_trip_and_log_det_in_float64():
    coupling = _coupling()
    output = coupling.conditioner.decoders[-1][-1]
    rng = np.random.default_rng(2)
    output.kernel.assign(rng.normal(0.0, 0.3, size=output.kernel.shape))
    output.bias.assign(rng.normal(0.0, 0.3, size=output.bias.shape))
    context = rng.normal(size=(3, 3, 4, 1))
    x = rng.normal(0.0, 4.0, size=(3, 3 * 4 * 4))
    z = assert_bijective(Flattened(coupling, [3, 4, 4], [3, 4, 4], conditional_input=context), x, event_ndims=1,
                         rtol=1e-7)
    assert np.abs(z - x).max() > 1e-2, "the coupling did not change its input"
    np.testing.assert_array_equal(z.reshape(3, 3, 4, 4)[..., 2:], x.reshape(3, 3, 4, 4)[..., 2:])
