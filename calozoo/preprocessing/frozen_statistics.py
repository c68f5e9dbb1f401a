"""Standardisation and min-max scaling with statistics measured once on training data, then frozen.

The statistics are non-trainable `tf.Variable`s, so they are saved with the model's weights and its SavedModel
(CaloPointFlow's "epoch 0" statistics, docs/models.md section 4.1).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["FrozenStandardizer", "FrozenMinMax"]


class FrozenStandardizer(tf.Module):
    """(x - mean) / std per feature, with `mean` and `std` set by `adapt` and stored as non-trainable variables.

    Example:
        >>> s = FrozenStandardizer(2, name="s")
        >>> s.adapt(np.array([[0.0, 1.0], [2.0, 3.0]]))
        >>> s.forward(np.array([[2.0, 3.0]])).numpy().tolist()
        [[1.0, 1.0]]
    """

    def __init__(self, features: int, dtype=tf.float32, name: str | None = None):
        super().__init__(name=name or "standardizer")
        with self.name_scope:
            self.mean = tf.Variable(tf.zeros([features], dtype), trainable=False, name="mean")
            self.std = tf.Variable(tf.ones([features], dtype), trainable=False, name="std")

    def adapt(self, values) -> None:
        """Sets mean and std (population std; 1 where a feature is constant) from values (N, features)."""
        values = np.asarray(values, np.float64).reshape(-1, self.mean.shape[0])
        if len(values) == 0:
            raise ValueError("`values` is empty: the statistics need at least one row of training data.")
        std = values.std(axis=0)
        self.mean.assign(values.mean(axis=0))
        self.std.assign(np.where(std > 0, std, 1.0))

    def forward(self, x):
        return (tf.cast(x, self.mean.dtype) - self.mean) / self.std

    def inverse(self, y):
        return tf.cast(y, self.mean.dtype) * self.std + self.mean


class FrozenMinMax(tf.Module):
    """(x - min) / (max - min) per feature, `min` and `max` set by `adapt` (non-trainable variables).

    Example:
        >>> m = FrozenMinMax(1)
        >>> m.adapt(np.array([[2.0], [4.0]]))
        >>> m.inverse(m.forward(np.array([[3.0]]))).numpy().tolist()
        [[3.0]]
    """

    def __init__(self, features: int, dtype=tf.float32, name: str | None = None):
        super().__init__(name=name or "min_max")
        with self.name_scope:
            self.minimum = tf.Variable(tf.zeros([features], dtype), trainable=False, name="minimum")
            self.maximum = tf.Variable(tf.ones([features], dtype), trainable=False, name="maximum")

    def adapt(self, values) -> None:
        """Sets min and max from values (N, features); a constant feature gets max = min + 1."""
        values = np.asarray(values, np.float64).reshape(-1, self.minimum.shape[0])
        if len(values) == 0:
            raise ValueError("`values` is empty: the statistics need at least one row of training data.")
        low, high = values.min(axis=0), values.max(axis=0)
        self.minimum.assign(low)
        self.maximum.assign(np.where(high > low, high, low + 1.0))

    def forward(self, x):
        return (tf.cast(x, self.minimum.dtype) - self.minimum) / (self.maximum - self.minimum)

    def inverse(self, y):
        return tf.cast(y, self.minimum.dtype) * (self.maximum - self.minimum) + self.minimum
