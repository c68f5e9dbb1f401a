"""The autoregressive network of zuko's masked autoregressive transform (zuko 1.1.0), with MADE's interface.

zuko's `MaskedAutoregressiveTransform(features, context, order=...)` feeds [x, c] to one `MaskedMLP` whose
adjacency lets output block i (the spline parameters of feature i, in feature order) see the features j with
order[j] < order[i] and every context feature. calozoo's `MADE` (nflows') differs in three ways: the context
goes through its own ReLU layer with a bias (H more parameters per block), its hidden units cycle through degrees,
and its order is the feature order (a separate permutation reorders). `ZukoMADE` is zuko's network exactly, so that
a zuko state_dict maps onto it one to one (`calozoo.bijectors.zuko_state_dict.assign_zuko_made`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from calozoo.networks.masked_mlp import MaskedMLP, masked_mlp_num_params

__all__ = ["ZukoMADE", "zuko_made_num_params", "autoregressive_adjacency"]


def autoregressive_adjacency(order: np.ndarray, context: int, params_per_feature: int) -> np.ndarray:
    """(D M, D + C) bool: output (i, m) sees input j < D where order[j] < order[i], and every context input.

        >>> autoregressive_adjacency(np.array([1, 0]), 1, 1).astype(int).tolist()
        [[0, 1, 1], [0, 0, 1]]
    """
    order = np.asarray(order, np.int64)
    in_order = np.concatenate([order, np.full(context, -1)])
    return np.repeat(order, params_per_feature)[:, None] > in_order[None, :]


def zuko_made_num_params(features: int, context: int, hidden: Sequence[int], params_per_feature: int) -> int:
    """Trainable parameters of one zuko masked network: the plain MLP (D + C) -> hidden -> D M."""
    return masked_mlp_num_params(features + context, hidden, features * params_per_feature)


class ZukoMADE(tf.Module):
    """zuko's masked network on [x, c]: outputs (..., D, M), output (i, m) depending on x_j with order[j] < order[i].

    `order` (a permutation of 0..D-1, zuko's `order` buffer) is the order in which `solve` recovers the features.

    Example:
        >>> made = ZukoMADE(features=2, context=1, hidden=[8, 8], params_per_feature=3, order=[1, 0], seed=0)
        >>> made(np.zeros((4, 2)), np.zeros((4, 1))).shape
        TensorShape([4, 2, 3])
    """

    def __init__(self, features: int, context: int, hidden: Sequence[int], params_per_feature: int,
                 order: Sequence[int] | None = None, seed: int = 0, dtype=tf.float64, name: str | None = None):
        super().__init__(name=name or "zuko_made")
        order = np.arange(features) if order is None else np.asarray(order, np.int64)
        if sorted(order.tolist()) != list(range(features)):
            raise ValueError(f"`order` must hold 0..{features - 1} once each; got {order.tolist()}.")
        self.features, self.context, self.params_per_feature = features, context, params_per_feature
        self.order = order
        with self.name_scope:
            self.net = MaskedMLP(autoregressive_adjacency(order, context, params_per_feature), hidden, seed=seed,
                                 dtype=dtype, name="net")

    @property
    def dtype(self) -> tf.DType:
        return self.net.dtype

    def __call__(self, x, context=None, training=False):
        """Autoregressive parameters, shape (..., D, M)."""
        x = tf.convert_to_tensor(x, self.dtype)
        if self.context:
            if context is None:
                raise ValueError(f"This network is conditional ({self.context} context features); pass `context`.")
            x = tf.concat([x, tf.convert_to_tensor(context, self.dtype)], axis=-1)
        out = self.net(x)
        return tf.reshape(out, tf.concat([tf.shape(out)[:-1], [self.features, self.params_per_feature]], axis=0))

    def by_parameter(self, x, context=None, training=False):
        """The parameters laid out (..., M, D), as `MADE.by_parameter`."""
        return tf.linalg.matrix_transpose(self(x, context, training))

    def solve(self, targets, context, elementwise, training=False):
        """Solves y_i = elementwise(x_i, params_i(y)) for y, feature by feature in `order` (D network passes).

        Args:
            targets: x, shape (B, D).
            context: conditions, shape (B, C) or None.
            elementwise: fn(x_i (B,), params_i (B, M)) -> (y_i (B,), log|dy_i/dx_i| (B,)).
        Returns:
            (y (B, D), log|dy/dx| (B,)), the log-det summed from each feature's step (see `MADE.solve`).
        """
        targets = tf.convert_to_tensor(targets, self.dtype)
        columns = [tf.zeros_like(targets[:, 0]) for _ in range(self.features)]
        logdet = tf.zeros_like(targets[:, 0])
        for i in np.argsort(self.order):
            params = self(tf.stack(columns, axis=-1), context)
            columns[i], logdet_i = elementwise(targets[:, i], params[:, i])
            logdet = logdet + logdet_i
        return tf.stack(columns, axis=-1), logdet
