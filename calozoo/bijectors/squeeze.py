"""Squeeze (space-to-depth) with separate factors along the two image axes, for non-square calorimeter layers."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = ["Squeeze"]


class Squeeze(tfb.Bijector):
    """Moves blocks of `factors` = (f_r, f_alpha) pixels into channels: (..., H, W, C) ->
    (..., H/f_r, W/f_a, C f_r f_a).

    Glow's squeeze uses 2 x 2 on square images; calorimeter layers are not square (DS2 9 r x 16 alpha, DS3
    18 x 50), so the factors are chosen per axis (DS3: (2, 2) -> 9 x 25 x 4; DS2: (1, 2) -> 9 x 8 x 2).
    Output channel index = c * f_r * f_a + i * f_a + j for the pixel (i, j) of a block. A permutation of
    the entries: the log-det is 0.

    Direction: `forward` squeezes (data side -> base side, as in nflows' SqueezeTransform).

    Example:
        >>> import numpy as np
        >>> Squeeze((1, 2)).forward(np.zeros((3, 9, 16, 1))).shape
        TensorShape([3, 9, 8, 2])
    """

    def __init__(self, factors=(2, 2), validate_args=False, name="squeeze"):
        parameters = dict(locals())
        factors = tuple(int(f) for f in factors)
        if len(factors) != 2 or min(factors) < 1:
            raise ValueError(f"`factors` must be two integers >= 1 (r, alpha); got {factors}.")
        self.factors = factors
        super().__init__(forward_min_event_ndims=3, is_constant_jacobian=True, validate_args=validate_args,
                         parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()

    def _check(self, height, width):
        fh, fw = self.factors
        if height is not None and width is not None and (height % fh or width % fw):
            raise ValueError(f"An image of {height} x {width} cannot be squeezed by {self.factors}: choose factors "
                             f"that divide the image size.")

    def _forward(self, x):
        x = tf.convert_to_tensor(x)
        fh, fw = self.factors
        self._check(x.shape[-3], x.shape[-2])
        batch, (h, w, c) = tf.shape(x)[:-3], [tf.shape(x)[i] for i in (-3, -2, -1)]
        rank = len(x.shape)
        blocks = tf.reshape(x, tf.concat([batch, [h // fh, fh, w // fw, fw, c]], 0))
        lead = list(range(rank - 3))
        blocks = tf.transpose(blocks, lead + [rank - 3, rank - 1, rank + 1, rank - 2, rank])
        return tf.reshape(blocks, tf.concat([batch, [h // fh, w // fw, c * fh * fw]], 0))

    def _inverse(self, y):
        y = tf.convert_to_tensor(y)
        fh, fw = self.factors
        batch, (h, w, c) = tf.shape(y)[:-3], [tf.shape(y)[i] for i in (-3, -2, -1)]
        rank = len(y.shape)
        blocks = tf.reshape(y, tf.concat([batch, [h, w, c // (fh * fw), fh, fw]], 0))
        lead = list(range(rank - 3))
        blocks = tf.transpose(blocks, lead + [rank - 3, rank, rank - 2, rank + 1, rank - 1])
        return tf.reshape(blocks, tf.concat([batch, [h * fh, w * fw, c // (fh * fw)]], 0))

    def _forward_log_det_jacobian(self, x):
        return tf.zeros([], dtype=x.dtype)

    def _inverse_log_det_jacobian(self, y):
        return tf.zeros([], dtype=y.dtype)

    def _forward_event_shape(self, input_shape):
        h, w, c = input_shape[-3:]
        fh, fw = self.factors
        return input_shape[:-3].concatenate([None if h is None else h // fh, None if w is None else w // fw,
                                             None if c is None else c * fh * fw])

    def _inverse_event_shape(self, output_shape):
        h, w, c = output_shape[-3:]
        fh, fw = self.factors
        return output_shape[:-3].concatenate([None if h is None else h * fh, None if w is None else w * fw,
                                              None if c is None else c // (fh * fw)])

    def _forward_event_shape_tensor(self, input_shape):
        fh, fw = self.factors
        return tf.concat([input_shape[:-3], [input_shape[-3] // fh, input_shape[-2] // fw,
                                             input_shape[-1] * fh * fw]], 0)

    def _inverse_event_shape_tensor(self, output_shape):
        fh, fw = self.factors
        return tf.concat([output_shape[:-3], [output_shape[-3] * fh, output_shape[-2] * fw,
                                              output_shape[-1] // (fh * fw)]], 0)
