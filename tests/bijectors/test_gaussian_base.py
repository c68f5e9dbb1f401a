"""The N(0, I) base of the conditional flows."""

import numpy as np
import tensorflow as tf

from calozoo.bijectors.gaussian_base import StandardNormalBase


class Identity(StandardNormalBase):
    features, dtype = 3, tf.float64

    def sample_from_noise(self, z, context=None):
        return z


def test_base_log_prob_is_the_standard_normal_density():
    z = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]])
    expected = -0.5 * (z**2).sum(axis=1) - 1.5 * np.log(2.0 * np.pi)
    np.testing.assert_allclose(Identity().base_log_prob(z).numpy(), expected, rtol=1e-14)


def test_sample_is_one_seeded_draw_per_context_row():
    flow, context = Identity(), np.zeros((5, 2))
    first, again = flow.sample(context, seed=[1, 2]).numpy(), flow.sample(context, seed=[1, 2]).numpy()
    assert first.shape == (5, 3) and np.array_equal(first, again)
    assert not np.array_equal(first, flow.sample(context, seed=[1, 3]).numpy())
