"""Invertible 1x1 convolution (Glow) with an LU-decomposed weight, initialised to a fixed channel permutation."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = ["LUInvertibleConv1x1", "lu_conv_num_params"]


def lu_conv_num_params(channels: int) -> int:
    """Trainable parameters: strict lower and upper triangles, the diagonal and the bias (C^2 + C)."""
    return channels * channels + channels


class LUInvertibleConv1x1(tfb.Bijector):
    """z = W x + b at every pixel of images (..., H, W, C), with W = P L U (nflows' OneByOneConvolution).

    P is a random channel permutation drawn once from `seed` and stored as a non-trainable weight; L is
    unit lower triangular; U is upper triangular with diagonal softplus(raw) + `min_diagonal`. At
    initialisation L = U = 1 (raw diagonal softplus^-1(1 - min_diagonal)) and b = 0, so W = P.
    log|det| = H W sum(log diag U).

    Generation only needs W^-1: `inverse_weight()` computes it once (two triangular solves); pass the
    result as `inverse_weight=` to `inverse` to reuse it for every call of a generation pass (the
    "cached weights" of the reference), see `ConvLayerFlow.cached_weights`.

    `permute_inputs=True` applies P to the input channels instead, W = L U P: the form of the reference's nflows
    `OneByOneConvolution` (its `RandomPermutation` runs before the LU linear map), which an imported reference
    convolution needs; the default (P after L U) is calozoo's original form and is kept for its trained models.

    Direction: `forward` is the data -> base side.

    Example:
        >>> conv = LUInvertibleConv1x1(4, seed=0, dtype=tf.float64)
        >>> conv.forward(np.ones((1, 2, 2, 4))).shape
        TensorShape([1, 2, 2, 4])
    """

    def __init__(self, channels: int, seed: int = 0, min_diagonal: float = 1e-3, dtype=tf.float32,
                 validate_args=False, name="lu_conv1x1", permute_inputs: bool = False):
        parameters = dict(locals())
        if channels < 1:
            raise ValueError(f"`channels` must be >= 1; got {channels}.")
        dtype = tf.as_dtype(dtype)
        self.channels, self.min_diagonal = int(channels), float(min_diagonal)
        self.permute_inputs = bool(permute_inputs)
        triangle = channels * (channels - 1) // 2
        raw_one = np.log(np.expm1(1.0 - min_diagonal))
        with tf.name_scope(name) as scope:
            self.permutation = tf.Variable(np.random.default_rng(seed).permutation(channels), trainable=False,
                                           name="permutation")
            self.lower_entries = tf.Variable(tf.zeros([triangle], dtype), name="lower_entries")
            self.upper_entries = tf.Variable(tf.zeros([triangle], dtype), name="upper_entries")
            self.raw_diagonal = tf.Variable(tf.fill([channels], tf.constant(raw_one, dtype)), name="raw_diagonal")
            self.bias = tf.Variable(tf.zeros([channels], dtype), name="bias")
            super().__init__(forward_min_event_ndims=3, validate_args=validate_args, dtype=dtype,
                             parameters=parameters, name=scope)
        rows, cols = np.tril_indices(channels, -1)
        self._lower_index = np.stack([rows, cols], -1)
        self._upper_index = np.stack([cols, rows], -1)  # the transpose positions: strictly upper

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()

    def _triangles(self):
        c = self.channels
        zeros = tf.zeros([c, c], self.dtype)
        lower = tf.tensor_scatter_nd_update(zeros, self._lower_index, self.lower_entries) + tf.eye(c, dtype=self.dtype)
        diagonal = tf.nn.softplus(self.raw_diagonal) + self.min_diagonal
        upper = tf.tensor_scatter_nd_update(zeros, self._upper_index, self.upper_entries) + tf.linalg.diag(diagonal)
        return lower, upper, diagonal

    def weight(self):
        """W = P L U (or L U P with `permute_inputs`), (C, C): z_i = sum_j W_ij x_j + b_i."""
        lower, upper, _ = self._triangles()
        if self.permute_inputs:  # (L U P)_ij = (L U)_{i, perm^-1(j)}
            return tf.gather(tf.matmul(lower, upper), tf.argsort(self.permutation), axis=1)
        return tf.gather(tf.matmul(lower, upper), self.permutation)

    def inverse_weight(self):
        """W^-1 = U^-1 L^-1 P^T (or P^T U^-1 L^-1 with `permute_inputs`) by two triangular solves, (C, C)."""
        lower, upper, _ = self._triangles()
        if self.permute_inputs:  # (P^T A)_ij = A_{perm^-1(i), j}
            identity = tf.eye(self.channels, dtype=self.dtype)
            inverse = tf.linalg.triangular_solve(upper, tf.linalg.triangular_solve(lower, identity, lower=True),
                                                 lower=False)
            return tf.gather(inverse, tf.argsort(self.permutation), axis=0)
        permutation_t = tf.transpose(tf.gather(tf.eye(self.channels, dtype=self.dtype), self.permutation))
        return tf.linalg.triangular_solve(upper, tf.linalg.triangular_solve(lower, permutation_t, lower=True),
                                          lower=False)

    def log_abs_det_per_pixel(self):
        return tf.reduce_sum(tf.math.log(self._triangles()[2]))

    def _pixels(self, x):
        return tf.cast(tf.shape(x)[-3] * tf.shape(x)[-2], x.dtype)

    def _forward(self, x):
        return tf.einsum("...j,ij->...i", x, self.weight()) + self.bias

    def _inverse(self, y, inverse_weight=None):
        inverse_weight = self.inverse_weight() if inverse_weight is None else inverse_weight
        return tf.einsum("...j,ij->...i", y - self.bias, inverse_weight)

    def _forward_log_det_jacobian(self, x):
        return self._pixels(x) * self.log_abs_det_per_pixel()

    def _inverse_log_det_jacobian(self, y, inverse_weight=None):
        return -self._pixels(y) * self.log_abs_det_per_pixel()
