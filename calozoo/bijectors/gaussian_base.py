"""The standard-normal base distribution shared by calozoo's conditional flows."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from calozoo import stateless

__all__ = ["StandardNormalBase", "standard_normal_log_prob"]

LOG_2PI = float(np.log(2.0 * np.pi))


def standard_normal_log_prob(z, event_size: int | None = None):
    """log N(z; 0, I), summed over the last axis, of size `event_size` (default: its static size).

        >>> float(standard_normal_log_prob(tf.zeros([1, 2], tf.float64))[0]) == -float(np.log(2.0 * np.pi))
        True
    """
    return -0.5 * tf.reduce_sum(z**2, axis=-1) - 0.5 * int(event_size or z.shape[-1]) * LOG_2PI


class StandardNormalBase:
    """Mixin for a flow with a N(0, I) base: gives `base_log_prob` and seeded `sample`.

    The flow provides `features` (the base dimension), `dtype` and `sample_from_noise(z, context)`.
    """

    def base_log_prob(self, z):
        """log N(z; 0, I), summed over the last axis."""
        return standard_normal_log_prob(tf.convert_to_tensor(z, self.dtype), self.features)

    def sample(self, context, seed):
        """One sample per row of `context`, from a stateless seed (int32[2])."""
        context = tf.convert_to_tensor(context, self.dtype)
        z = stateless.normal([tf.shape(context)[0], self.features], seed=seed, dtype=self.dtype)
        return self.sample_from_noise(z, context)
