"""CaloPointFlow II's "DeepSetFlow" coupling: an RQS coupling on each point whose spline parameters also see a
DeepSet summary of the identity features of every point of the same shower (docs/models.md section 4.2)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from calozoo.bijectors.rq_coupling import split_features
from calozoo.bijectors.rq_spline import SplineSettings, rqs_forward, rqs_inverse
from calozoo.data.point_clouds import segment_mean
from calozoo.networks.mlp import MLP, mlp_num_params

tfb = tfp.bijectors

__all__ = ["DeepSetCoupling", "deepset_coupling_num_params"]


def deepset_coupling_num_params(features: int, n_identity: int, context: int, hidden: int, num_layers: int,
                                num_bins: int, set_hidden: Sequence[int] = (64, 128), set_width: int = 512,
                                summary_hidden: Sequence[int] = (512, 256), summary_dim: int = 128) -> int:
    """Trainable parameters of one DeepSetCoupling, from the layer shapes."""
    point_net = mlp_num_params(n_identity, list(set_hidden), set_width)
    summary_net = mlp_num_params(set_width, list(summary_hidden), summary_dim)
    outputs = (features - n_identity) * (3 * num_bins - 1)
    return point_net + summary_net + mlp_num_params(n_identity + context + summary_dim, [hidden] * num_layers, outputs)


class DeepSetCoupling(tfb.Bijector):
    """Coupling on points grouped in sets: x_B -> RQS(x_B; theta(x_A, c, s)), x_A unchanged, where
    s = rho(mean over the point's set of phi(x_A)) is a DeepSet summary of the identity features of its set.

    Because s depends only on the identity features, which no direction changes, s is the same whether computed
    from the inputs or the outputs, and the layer is invertible point by point (both directions are one pass).

    Conditioning (kwargs of every bijector method): `conditional_input` (P, C) per point, `segment_ids` (P,) the set
    of each point, `num_segments` the number of sets. Log-dets are per point.

    References:
        Schnake, Krücker, Borras, CaloPointFlow II, arXiv:2403.15782; Zaheer et al., Deep Sets, arXiv:1703.06114.

    Example:
        >>> layer = DeepSetCoupling(3, [0], context=2, hidden=8, set_hidden=[8], set_width=8, summary_hidden=[8],
        ...                         summary_dim=4, dtype=tf.float64)
        >>> x, c = np.zeros((4, 3)), np.zeros((4, 2))
        >>> layer.forward(x, conditional_input=c, segment_ids=[0, 0, 1, 1], num_segments=2).shape
        TensorShape([4, 3])
    """

    def __init__(self, features: int, identity: Sequence[int], context: int, hidden: int, num_layers: int = 3,
                 spline: SplineSettings | None = None, set_hidden: Sequence[int] = (64, 128), set_width: int = 512,
                 summary_hidden: Sequence[int] = (512, 256), summary_dim: int = 128, seed: int = 0, dtype=tf.float32,
                 validate_args=False, name=None):
        parameters = dict(locals())
        name = name or "deepset_coupling"
        identity, transformed = split_features(features, identity)
        with tf.name_scope(name) as name:
            self.features, self.context = features, context
            self.spline = spline or SplineSettings(8, 5.0, 0.0, 0.0, 0.0, parametrization="zuko")
            self.n_transformed = len(transformed)
            self.identity_index = tf.constant(identity, tf.int32)
            self.transform_index = tf.constant(transformed, tf.int32)
            self._merge_order = tf.constant(np.argsort(np.concatenate([identity, transformed])), tf.int32)
            self.point_net = MLP(len(identity), list(set_hidden), set_width, seed=seed, dtype=dtype, name="point_net")
            self.summary_net = MLP(set_width, list(summary_hidden), summary_dim, seed=seed + 1, dtype=dtype,
                                   name="summary_net")
            self.conditioner = MLP(len(identity) + context + summary_dim, [hidden] * num_layers,
                                   self.n_transformed * self.spline.num_params, seed=seed + 2, dtype=dtype,
                                   name="conditioner")
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args, dtype=tf.as_dtype(dtype),
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()

    def summary(self, identity_part, segment_ids, num_segments):
        """(P, summary_dim): each point's set summary rho(mean phi(x_A)); an empty set is never gathered."""
        pooled = segment_mean(self.point_net(identity_part), segment_ids, num_segments)
        return tf.gather(self.summary_net(pooled), segment_ids)

    def spline_params(self, identity_part, conditional_input, segment_ids, num_segments):
        """(P, |B|, 3K-1) raw spline parameters from [x_A, c, summary]."""
        parts = [identity_part, self.summary(identity_part, segment_ids, num_segments)]
        if self.context:
            parts.insert(1, tf.cast(conditional_input, identity_part.dtype))
        raw = self.conditioner(tf.concat(parts, axis=-1))
        return tf.reshape(raw, [-1, self.n_transformed, self.spline.num_params])

    def _apply(self, values, conditional_input, segment_ids, num_segments, spline_fn):
        values = tf.convert_to_tensor(values, self.dtype)
        segment_ids = tf.cast(segment_ids, tf.int32)
        identity_part = tf.gather(values, self.identity_index, axis=-1)
        params = self.spline_params(identity_part, conditional_input, segment_ids, num_segments)
        moved, logdet = spline_fn(tf.gather(values, self.transform_index, axis=-1), params, self.spline)
        merged = tf.gather(tf.concat([identity_part, moved], axis=-1), self._merge_order, axis=-1)
        return merged, tf.reduce_sum(logdet, axis=-1)

    def to_base(self, y, conditional_input=None, segment_ids=None, num_segments=None):
        """Density direction (x, log|dx/dy| per point)."""
        return self._apply(y, conditional_input, segment_ids, num_segments, rqs_forward)

    def to_data(self, x, conditional_input=None, segment_ids=None, num_segments=None):
        """Sampling direction (y, log|dy/dx| per point)."""
        return self._apply(x, conditional_input, segment_ids, num_segments, rqs_inverse)

    def _forward(self, x, **kwargs):
        return self.to_data(x, **kwargs)[0]

    def _inverse(self, y, **kwargs):
        return self.to_base(y, **kwargs)[0]

    def _forward_log_det_jacobian(self, x, **kwargs):
        return self.to_data(x, **kwargs)[1]

    def _inverse_log_det_jacobian(self, y, **kwargs):
        return self.to_base(y, **kwargs)[1]
