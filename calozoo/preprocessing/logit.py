"""The logit transform of the MAF paper, logit(alpha + (1 - 2 alpha) x), and its clamped inverse."""

import tensorflow as tf

__all__ = ["logit_transform", "inverse_logit_transform"]


def logit_transform(x, alpha=1e-6):
    """Maps [0, 1] to the real line: logit(alpha + (1 - 2 alpha) x)."""
    squeezed = alpha + (1.0 - 2.0 * alpha) * x
    return tf.math.log(squeezed) - tf.math.log1p(-squeezed)


def inverse_logit_transform(y, alpha=1e-6, clamp=True):
    """(sigmoid(y) - alpha) / (1 - 2 alpha), clamped to [0, 1] unless `clamp=False`."""
    x = (tf.sigmoid(y) - alpha) / (1.0 - 2.0 * alpha)
    return tf.clip_by_value(x, 0.0, 1.0) if clamp else x
