"""Image bijectors seen as vector bijectors, so that `assert_bijective` can check them with a full Jacobian."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = ["Flattened"]


class Flattened(tfb.Bijector):
    """`inner` on images (N, H, W, C) -> (N, h, w, c) as a bijector on flat vectors (N, H W C) -> (N, h w c),
    with fixed keyword arguments (a context) bound."""

    def __init__(self, inner, in_shape, out_shape, **kwargs):
        self.inner, self.in_shape, self.out_shape, self.kwargs = inner, list(in_shape), list(out_shape), kwargs
        super().__init__(forward_min_event_ndims=1, dtype=tf.float64, name="flattened")

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()

    def _forward(self, x):
        y = self.inner.forward(tf.reshape(x, [-1] + self.in_shape), **self.kwargs)
        return tf.reshape(y, [tf.shape(x)[0], -1])

    def _inverse(self, y):
        x = self.inner.inverse(tf.reshape(y, [-1] + self.out_shape), **self.kwargs)
        return tf.reshape(x, [tf.shape(y)[0], -1])

    def _forward_log_det_jacobian(self, x):
        images = tf.reshape(x, [-1] + self.in_shape)
        return tf.broadcast_to(self.inner.forward_log_det_jacobian(images, event_ndims=3, **self.kwargs),
                               tf.shape(x)[:1])

    def _inverse_log_det_jacobian(self, y):
        images = tf.reshape(y, [-1] + self.out_shape)
        return tf.broadcast_to(self.inner.inverse_log_det_jacobian(images, event_ndims=3, **self.kwargs),
                               tf.shape(y)[:1])
