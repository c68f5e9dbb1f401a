"""Continuous stand-ins for integer point coordinates (CaloPointFlow, docs/models.md section 4.1).

- CDF dequantisation (model II): an integer k becomes cdf[k] + pdf[k] * u with u ~ U(0, 1), where cdf/pdf are the
  empirical marginal histogram of the training data, then probit (of eps + (1 - 2 eps) x, as in the reference). Its
  inverse is a search in the cdf.
- Uniform dequantisation (model I): (k + u) / size, and (alpha, r) -> (x, y) in the unit square.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["probit", "inverse_probit", "CDFDequantizer", "uniform_dequantize", "uniform_quantize",
           "polar_to_unit_square", "unit_square_to_polar"]

_SQRT2 = np.sqrt(2.0)


def probit(p, eps: float = 1e-6):
    """The standard-normal quantile of eps + (1 - 2 eps) p, p clipped to [0, 1]: the reference's `normal_quantile`,
    which shrinks [0, 1] onto [eps, 1 - eps] affinely (as `logit_transform` does), not by clipping."""
    p = tf.clip_by_value(p, 0.0, 1.0)
    return _SQRT2 * tf.math.erfinv((1.0 - 2.0 * eps) * (2.0 * p - 1.0))


def inverse_probit(y, eps: float = 1e-6):
    """(Phi(y) - eps) / (1 - 2 eps) clipped to [0, 1], Phi the standard-normal CDF: the inverse of `probit` (the
    reference's `normal_cdf`)."""
    return tf.clip_by_value(0.5 * (1.0 + tf.math.erf(y / _SQRT2) / (1.0 - 2.0 * eps)), 0.0, 1.0)


class CDFDequantizer(tf.Module):
    """CDF dequantisation + probit of integer features with `sizes[i]` values each.

    `cdf_i` (sizes[i] + 1 knots, from 0 to 1) is measured by `adapt` and stored as a non-trainable variable.

    Example:
        >>> d = CDFDequantizer([3])
        >>> d.adapt(np.array([[0], [1], [1], [2]]))
        >>> d.inverse(d.forward(np.array([[1]]), np.array([[0.5]]))).numpy().tolist()
        [[1]]
    """

    def __init__(self, sizes, dtype=tf.float32, eps: float = 1e-6, name: str | None = None):
        super().__init__(name=name or "cdf_dequantizer")
        self.sizes, self.eps = [int(s) for s in sizes], float(eps)
        with self.name_scope:
            self.cdfs = [tf.Variable(np.linspace(0.0, 1.0, s + 1), dtype=dtype, trainable=False, name=f"cdf{i}")
                         for i, s in enumerate(self.sizes)]

    def adapt(self, values) -> None:
        """The empirical marginal CDFs of integer values (N, features)."""
        values = np.asarray(values).reshape(-1, len(self.sizes))
        if len(values) == 0:
            raise ValueError("`values` is empty: the histograms need at least one point of training data.")
        for i, (size, cdf) in enumerate(zip(self.sizes, self.cdfs)):
            counts = np.bincount(values[:, i].astype(np.int64), minlength=size)[:size]
            cdf.assign(np.concatenate([[0.0], np.cumsum(counts) / counts.sum()]))

    def forward(self, values, uniform):
        """probit(cdf[k] + pdf[k] * u) per feature for integers (P, F) and u (P, F) in [0, 1)."""
        columns = []
        for i, cdf in enumerate(self.cdfs):
            k = tf.cast(values[:, i], tf.int32)
            low, high = tf.gather(cdf, k), tf.gather(cdf, k + 1)
            columns.append(low + (high - low) * tf.cast(uniform[:, i], cdf.dtype))
        return probit(tf.stack(columns, axis=-1), self.eps)

    def inverse(self, y):
        """Integers (P, F): the bin whose cdf interval holds p = inverse_probit(y), searched as the reference does
        (the first left knot >= p, minus 1, at least 0): a p on a knot belongs to the bin below it, p = 0 to bin 0
        and p = 1 to the last bin that is not empty."""
        p = inverse_probit(y, self.eps)
        columns = []
        for i, (size, cdf) in enumerate(zip(self.sizes, self.cdfs)):
            index = tf.searchsorted(cdf[:-1], tf.cast(p[:, i], cdf.dtype), side="left", out_type=tf.int32) - 1
            columns.append(tf.clip_by_value(index, 0, size - 1))
        return tf.cast(tf.stack(columns, axis=-1), tf.int32)


def uniform_dequantize(values, uniform, sizes):
    """(k + u) / size per feature: integers (P, F) to (0, 1)."""
    sizes = tf.constant(sizes, uniform.dtype)
    return (tf.cast(values, uniform.dtype) + uniform) / sizes


def uniform_quantize(x, sizes):
    """floor(x * size) clamped to [0, size - 1]: the inverse of `uniform_dequantize`."""
    scaled = tf.floor(x * tf.constant(sizes, x.dtype))
    return tf.cast(tf.clip_by_value(scaled, 0.0, tf.constant(sizes, x.dtype) - 1.0), tf.int32)


def polar_to_unit_square(alpha, r):
    """(cos(2 pi alpha) r / 2 + 1/2, sin(2 pi alpha) r / 2 + 1/2) for alpha, r in [0, 1): the disc in the unit
    square."""
    angle = 2.0 * np.pi * alpha
    return tf.cos(angle) * r / 2.0 + 0.5, tf.sin(angle) * r / 2.0 + 0.5


def unit_square_to_polar(x, y):
    """(alpha in [0, 1), r >= 0) from a point of the unit square: the inverse of `polar_to_unit_square`."""
    dx, dy = 2.0 * x - 1.0, 2.0 * y - 1.0
    alpha = tf.math.floormod(tf.atan2(dy, dx) / (2.0 * np.pi), 1.0)
    return alpha, tf.sqrt(dx**2 + dy**2)
