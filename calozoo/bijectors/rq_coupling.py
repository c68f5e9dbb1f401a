"""A rational-quadratic spline coupling layer (nflows' PiecewiseRationalQuadraticCouplingTransform, linear tails)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from calozoo.bijectors.residual_net import ResidualNet, residual_net_num_params
from calozoo.bijectors.rq_spline import SplineSettings, rqs_forward, rqs_inverse
from calozoo.networks.mlp import MLP, mlp_num_params

tfb = tfp.bijectors

__all__ = ["RQSCoupling", "coupling_masks", "random_coupling_masks", "rqs_coupling_num_params", "split_features"]


def coupling_masks(features: int, parity: int) -> tuple[np.ndarray, np.ndarray]:
    """(identity indices, transformed indices). nflows' mask: parity 0 keeps the even indices and transforms the
    odd ones; parity 1 the other way round (CaloMan alternates them layer by layer)."""
    if parity not in (0, 1):
        raise ValueError(f"`parity` must be 0 or 1; got {parity}.")
    if features < 2:
        raise ValueError(f"A coupling layer needs `features` >= 2; got {features}.")
    index = np.arange(features)
    return index[index % 2 == parity], index[index % 2 != parity]


def split_features(features: int, identity) -> tuple[np.ndarray, np.ndarray]:
    """(identity indices, transformed indices) of a coupling whose `identity` features stay unchanged."""
    identity = np.asarray(sorted(int(i) for i in identity))
    transformed = np.setdiff1d(np.arange(features), identity)
    if len(identity) == 0 or len(transformed) == 0 or identity.min() < 0 or identity.max() >= features:
        raise ValueError(f"`identity` must be a proper, non-empty subset of range({features}); got "
                         f"{identity.tolist()}.")
    return identity, transformed


def random_coupling_masks(features: int, n_identity: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(identity indices, transformed indices): `n_identity` features drawn at random stay unchanged (zuko's
    random masks); both parts sorted."""
    if not 1 <= n_identity < features:
        raise ValueError(f"`n_identity` must lie in [1, {features - 1}] for {features} features; got {n_identity}.")
    chosen = np.zeros(features, bool)
    chosen[rng.choice(features, n_identity, replace=False)] = True
    index = np.arange(features)
    return index[chosen], index[~chosen]


def rqs_coupling_num_params(features: int, parity: int, context: int, hidden: int, num_blocks: int,
                            num_bins: int, conditioner: str = "residual", n_identity: int | None = None) -> int:
    """Trainable parameters of one coupling layer: its conditioner's (ResidualNet, or a ReLU MLP with
    `num_blocks` hidden layers of width `hidden` reading [identity part, context])."""
    if n_identity is None:
        n_identity = len(coupling_masks(features, parity)[0])
    outputs = (features - n_identity) * (3 * num_bins - 1)
    if conditioner == "mlp":
        return mlp_num_params(n_identity + context, [hidden] * num_blocks, outputs)
    return residual_net_num_params(n_identity, outputs, hidden, context, num_blocks)


class RQSCoupling(tfb.Bijector):
    """Coupling layer: the identity part y_A conditions an elementwise RQS on the other part y_B.

    inverse (data y -> base x, nflows' forward):  x_A = y_A, x_B = RQS(y_B; theta(y_A, c)).
    forward (base x -> data y, sampling):         y_A = x_A, y_B = RQS^{-1}(x_B; theta(x_A, c)).
    Both directions are one pass of the ResidualNet. As in nflows, the raw bin widths and heights are divided
    by sqrt(hidden) before the softmax; CaloMan uses 8 bins on [-1, 1] with minima 1e-3.

    zuko-style (CaloPointFlow): `identity=` gives the identity features explicitly (random masks, see
    `random_coupling_masks`), `conditioner="mlp"` is a ReLU MLP on [x_A, c] with `num_blocks` hidden layers, and a
    spline with `parametrization="zuko"` takes the raw values unscaled.

    References:
        Durkan et al., Neural Spline Flows, arXiv:1906.04032; Dinh et al., Real NVP, arXiv:1605.08803.

    Example:
        >>> layer = RQSCoupling(features=4, parity=0, context=1, hidden=8)
        >>> x = np.random.default_rng(0).normal(size=(3, 4))
        >>> c = np.ones((3, 1))
        >>> np.allclose(layer.forward(layer.inverse(x, conditional_input=c), conditional_input=c), x)
        True
    """

    def __init__(self, features: int, parity: int, context: int, hidden: int, num_blocks: int = 2,
                 spline: SplineSettings | None = None, seed: int = 0, dtype=tf.float64, validate_args=False, name=None,
                 identity=None, conditioner: str = "residual"):
        parameters = dict(locals())
        name = name or "rqs_coupling"
        if conditioner not in ("residual", "mlp"):
            raise ValueError(f"`conditioner` must be 'residual' or 'mlp'; got {conditioner!r}.")
        if identity is None:
            identity, transformed = coupling_masks(features, parity)
        else:
            identity, transformed = split_features(features, identity)
        with tf.name_scope(name) as name:
            self.features, self.parity, self.context = features, parity, context
            self.spline = spline or SplineSettings(8, 1.0, 1e-3, 1e-3, 1e-3)
            self.n_transformed = len(transformed)
            self.identity_index = tf.constant(identity, tf.int32)
            self.transform_index = tf.constant(transformed, tf.int32)
            # out[..., j] is input j's position in concat([identity part, transformed part])
            self._merge_order = tf.constant(np.argsort(np.concatenate([identity, transformed])), tf.int32)
            outputs = len(transformed) * self.spline.num_params
            if conditioner == "mlp":
                self.net = MLP(len(identity) + context, [hidden] * num_blocks, outputs, seed=seed, dtype=dtype,
                               name="conditioner")
                self.net.hidden = hidden
            else:
                self.net = ResidualNet(len(identity), outputs, hidden, context, num_blocks, seed=seed, dtype=dtype,
                                       name="conditioner")
            self.conditioner = conditioner
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args, dtype=tf.as_dtype(dtype),
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()

    def spline_params(self, identity_part, conditional_input=None):
        """(N, |B|, 3K-1) spline parameters, widths and heights divided by sqrt(hidden) as in nflows."""
        if self.conditioner == "mlp":
            inputs = identity_part if not self.context else tf.concat(
                [identity_part, tf.cast(conditional_input, identity_part.dtype)], axis=-1)
            raw = self.net(inputs)
        else:
            raw = self.net(identity_part, conditional_input if self.context else None)
        raw = tf.reshape(raw, [-1, self.n_transformed, self.spline.num_params])
        if self.spline.parametrization == "zuko":
            return raw
        k = self.spline.num_bins
        scale = 1.0 / np.sqrt(self.net.hidden)
        return tf.concat([raw[..., : 2 * k] * scale, raw[..., 2 * k :]], axis=-1)

    def _apply(self, values, conditional_input, spline_fn):
        values = tf.convert_to_tensor(values, self.dtype)
        identity_part = tf.gather(values, self.identity_index, axis=-1)
        params = self.spline_params(identity_part, conditional_input)
        moved, logdet = spline_fn(tf.gather(values, self.transform_index, axis=-1), params, self.spline)
        merged = tf.gather(tf.concat([identity_part, moved], axis=-1), self._merge_order, axis=-1)
        return merged, tf.reduce_sum(logdet, axis=-1)

    def to_base(self, y, conditional_input=None):
        """Density direction (x, log|dx/dy|)."""
        return self._apply(y, conditional_input, rqs_forward)

    def to_data(self, x, conditional_input=None):
        """Sampling direction (y, log|dy/dx|)."""
        return self._apply(x, conditional_input, rqs_inverse)

    def _forward(self, x, conditional_input=None):
        return self.to_data(x, conditional_input)[0]

    def _inverse(self, y, conditional_input=None):
        return self.to_base(y, conditional_input)[0]

    def _forward_log_det_jacobian(self, x, conditional_input=None):
        return self.to_data(x, conditional_input)[1]

    def _inverse_log_det_jacobian(self, y, conditional_input=None):
        return self.to_base(y, conditional_input)[1]
