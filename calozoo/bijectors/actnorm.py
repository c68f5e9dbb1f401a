"""ActNorm (Glow): a per-channel affine map whose first use sets it from data (zero mean, unit variance)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = ["ActNorm"]


class ActNorm(tfb.Bijector):
    """z = x * exp(log_scale) + shift per channel of images (..., H, W, C); log|det| = H W sum(log_scale).

    Data-dependent initialisation (Kingma & Dhariwal, Glow, arXiv:1807.03039): `initialize(x)` sets the
    parameters so that z has zero mean and unit standard deviation per channel over the batch and pixels,
    and records it in the non-trainable `initialized` flag (saved with the weights), so a trained or
    reloaded model is never re-initialised. Before that the map is the identity.

    Direction: `forward` is the data -> base side (nflows' ActNorm).

    Example:
        >>> import numpy as np
        >>> norm = ActNorm(2, dtype=tf.float64)
        >>> norm.initialize(np.random.default_rng(0).normal(3.0, 2.0, (64, 4, 5, 2)))
        >>> bool(norm.initialized)
        True
    """

    def __init__(self, channels: int, dtype=tf.float32, validate_args=False, name="act_norm"):
        parameters = dict(locals())
        if channels < 1:
            raise ValueError(f"`channels` must be >= 1; got {channels}.")
        dtype = tf.as_dtype(dtype)
        with tf.name_scope(name) as scope:
            self.log_scale = tf.Variable(tf.zeros([channels], dtype), name="log_scale")
            self.shift = tf.Variable(tf.zeros([channels], dtype), name="shift")
            self.initialized = tf.Variable(False, trainable=False, name="initialized")
            super().__init__(forward_min_event_ndims=3, validate_args=validate_args, dtype=dtype,
                             parameters=parameters, name=scope)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()

    def initialize(self, x, eps: float = 1e-6) -> None:
        """Sets shift and log_scale from a batch of images (eagerly); a no-op once initialised."""
        if bool(self.initialized.numpy()):
            return
        x = np.asarray(x, np.float64)
        axes = tuple(range(x.ndim - 1))
        std = x.std(axis=axes) + eps
        mean = x.mean(axis=axes)
        self.log_scale.assign((-np.log(std)).astype(self.dtype.as_numpy_dtype))
        self.shift.assign((-mean / std).astype(self.dtype.as_numpy_dtype))
        self.initialized.assign(True)

    def _pixels(self, x):
        return tf.cast(tf.shape(x)[-3] * tf.shape(x)[-2], x.dtype)

    def _forward(self, x):
        return x * tf.exp(self.log_scale) + self.shift

    def _inverse(self, y):
        return (y - self.shift) * tf.exp(-self.log_scale)

    def _forward_log_det_jacobian(self, x):
        return self._pixels(x) * tf.reduce_sum(self.log_scale)

    def _inverse_log_det_jacobian(self, y):
        return -self._pixels(y) * tf.reduce_sum(self.log_scale)
