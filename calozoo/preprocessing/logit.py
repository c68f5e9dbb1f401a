"""The logit transform of the MAF paper, logit(alpha + (1 - 2 alpha) x), and its clamped inverse."""

import tensorflow as tf

__all__ = ["logit_transform", "inverse_logit_transform"]


def logit_transform(x, alpha=1e-6):
    """Maps [0, 1] to the real line: logit(alpha + (1 - 2 alpha) x).

    Written as log(alpha + (1 - 2 alpha) x) - log(alpha + (1 - 2 alpha)(1 - x)), which is the same function but
    keeps x = 1 finite in float32 when alpha is below float32's resolution near 1 (1 - 1e-10 rounds to 1).
    """
    scale = 1.0 - 2.0 * alpha
    return tf.math.log(alpha + scale * x) - tf.math.log(alpha + scale * (1.0 - x))


def inverse_logit_transform(y, alpha=1e-6, clamp=True):
    """(sigmoid(y) - alpha) / (1 - 2 alpha), clamped to [0, 1] unless `clamp=False`."""
    x = (tf.sigmoid(y) - alpha) / (1.0 - 2.0 * alpha)
    return tf.clip_by_value(x, 0.0, 1.0) if clamp else x
