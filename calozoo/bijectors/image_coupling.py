"""Rational-quadratic spline coupling on image channels: the first channels are transformed elementwise by
splines whose parameters a conditioner computes from the other channels and a context image."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from calozoo.bijectors.rq_spline import SplineSettings, rqs_forward, rqs_inverse

tfb = tfp.bijectors

__all__ = ["ImageRQSCoupling"]


class ImageRQSCoupling(tfb.Bijector):
    """RQS coupling on images (..., H, W, C): channels [0, t) are splined, channels [t, C) pass unchanged.

    `conditioner(concat([x[..., t:], context], -1), training)` returns (N, H, W, t (3K - 1)) raw spline
    parameters, laid out per transformed channel as [K widths, K heights, K - 1 interior slopes] (the
    layout of calozoo.bijectors.rq_spline). ConvL2LFlow's settings: K = 10, tail bound 15, minima 1e-3.

    Identity initialisation: with a zero-initialised last conditioner layer, widths and heights are
    uniform, and the raw slopes are offset by softplus^-1(1 - min_derivative), so every interior slope is
    exactly 1 and the spline is the identity. The reference's nflows fork takes min_d + softplus(beta raw) / beta,
    beta = ln 2 / (1 - min_d), instead: interior slopes 1 at raw 0 too, but other slopes elsewhere, and boundary
    slopes of 1.2950, so its spline at initialisation is not quite the identity in the two outer bins. A spline with
    `parametrization="nflows-identity-init"` takes the reference's form (no offset is added), which is what an
    imported reference coupling needs (measured in tests/reference/test_l2lflow_reference.py).

    Direction: `forward` is the data -> base side (the spline itself); `inverse` solves the quadratic.
    The context is passed as `conditional_input=`, the BatchNorm mode as `training=`.
    """

    def __init__(self, channels: int, conditioner, spline: SplineSettings, transform_channels: int | None = None,
                 dtype=tf.float32, validate_args=False, name="image_rqs_coupling"):
        parameters = dict(locals())
        self.channels = int(channels)
        self.transform_channels = int(transform_channels or (channels + 1) // 2)
        if not 1 <= self.transform_channels < self.channels:
            raise ValueError(f"`transform_channels` must be in [1, {channels - 1}] for {channels} channels; got "
                             f"{self.transform_channels}. A coupling needs at least 2 channels (squeeze first).")
        self.conditioner, self.spline = conditioner, spline
        self._slope_offset = (0.0 if spline.parametrization == "nflows-identity-init"
                              else float(np.log(np.expm1(1.0 - spline.min_derivative))))
        with tf.name_scope(name) as scope:
            super().__init__(forward_min_event_ndims=3, validate_args=validate_args, dtype=tf.as_dtype(dtype),
                             parameters=parameters, name=scope)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()

    @property
    def num_conditioner_outputs(self) -> int:
        return self.transform_channels * self.spline.num_params

    def spline_params(self, identity_part, conditional_input=None, training=False):
        """Raw spline parameters (N, H, W, t, 3K - 1) from the unchanged channels and the context."""
        inputs = identity_part if conditional_input is None else tf.concat([identity_part, conditional_input], -1)
        raw = self.conditioner(inputs, training=training)
        shape = tf.concat([tf.shape(raw)[:-1], [self.transform_channels, self.spline.num_params]], 0)
        raw = tf.reshape(raw, shape)
        k = self.spline.num_bins
        return tf.concat([raw[..., : 2 * k], raw[..., 2 * k :] + self._slope_offset], axis=-1)

    def _apply(self, x, spline_fn, conditional_input, training):
        t = self.transform_channels
        params = self.spline_params(x[..., t:], conditional_input, training)
        y, log_det = spline_fn(x[..., :t], params, self.spline)
        return tf.concat([y, x[..., t:]], axis=-1), tf.reduce_sum(log_det, axis=[-3, -2, -1])

    def forward_and_log_det(self, x, conditional_input=None, training=False):
        """(z, log|dz/dx|) in one conditioner pass."""
        return self._apply(x, rqs_forward, conditional_input, training)

    def inverse_and_log_det(self, z, conditional_input=None, training=False):
        """(x, log|dx/dz|) in one conditioner pass."""
        return self._apply(z, rqs_inverse, conditional_input, training)

    def _forward(self, x, conditional_input=None, training=False):
        return self.forward_and_log_det(x, conditional_input, training)[0]

    def _inverse(self, y, conditional_input=None, training=False):
        return self.inverse_and_log_det(y, conditional_input, training)[0]

    def _forward_log_det_jacobian(self, x, conditional_input=None, training=False):
        return self.forward_and_log_det(x, conditional_input, training)[1]

    def _inverse_log_det_jacobian(self, y, conditional_input=None, training=False):
        return self.inverse_and_log_det(y, conditional_input, training)[1]
