"""The standard-normal base distribution shared by calozoo's conditional flows."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["StandardNormalBase"]


class StandardNormalBase:
    """Mixin for a flow with a N(0, I) base: gives `base_log_prob` and seeded `sample`.

    The flow provides `features` (the base dimension), `dtype` and `sample_from_noise(z, context)`.
    """

    def base_log_prob(self, z):
        """log N(z; 0, I), summed over the last axis."""
        z = tf.convert_to_tensor(z, self.dtype)
        return -0.5 * tf.reduce_sum(z**2, axis=-1) - 0.5 * self.features * np.log(2.0 * np.pi)

    def sample(self, context, seed):
        """One sample per row of `context`, from a stateless seed (int32[2])."""
        context = tf.convert_to_tensor(context, self.dtype)
        z = tf.random.stateless_normal([tf.shape(context)[0], self.features], seed=seed, dtype=self.dtype)
        return self.sample_from_noise(z, context)
