"""An invertible linear map parametrised by its LU decomposition (nflows' LULinear), as a TFP bijector."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = ["LULinear", "lu_linear_num_params"]


def lu_linear_num_params(features: int) -> int:
    """D(D-1)/2 lower + D(D-1)/2 upper off-diagonal entries + D diagonal + D bias = D² + D."""
    return features * features + features


class LULinear(tfb.Bijector):
    """W = L U with L unit lower-triangular and U upper-triangular with diagonal softplus(u) + eps.

    inverse (data y -> base x, the density direction, nflows' forward): x = W y + b, log|det| = sum log diag U.
    forward (base x -> data y, sampling): y = U^{-1} L^{-1} (x - b), two triangular solves.
    Both are one pass. With `identity_init` (the default, as in CaloMan) W starts as the identity.

    References:
        Kingma & Dhariwal, Glow, arXiv:1807.03039; Durkan et al., Neural Spline Flows, arXiv:1906.04032.

    Example:
        >>> lu = LULinear(3)
        >>> np.allclose(lu.inverse(np.ones((2, 3))), 1.0)
        True
    """

    def __init__(self, features: int, identity_init: bool = True, eps: float = 1e-3, seed: int = 0, dtype=tf.float64,
                 validate_args=False, name=None):
        parameters = dict(locals())
        if features < 1:
            raise ValueError(f"`features` must be >= 1; got {features}.")
        if eps < 0:
            raise ValueError(f"`eps` must be >= 0; got {eps}.")
        name = name or "lu_linear"
        dtype = tf.as_dtype(dtype)
        np_dtype = dtype.as_numpy_dtype
        with tf.name_scope(name) as name:
            self.features, self.eps = features, float(eps)
            n_off = features * (features - 1) // 2
            rng = np.random.default_rng(seed)
            bound = 0.0 if identity_init else 1.0 / np.sqrt(features)
            if identity_init:  # softplus(u) + eps = 1
                diag = np.full(features, np.log(np.expm1(1.0 - eps)))
            else:
                diag = rng.uniform(-bound, bound, features)
            self.lower_entries = tf.Variable(rng.uniform(-bound, bound, n_off).astype(np_dtype), name="lower_entries")
            self.upper_entries = tf.Variable(rng.uniform(-bound, bound, n_off).astype(np_dtype), name="upper_entries")
            self.unconstrained_upper_diag = tf.Variable(diag.astype(np_dtype), name="unconstrained_upper_diag")
            self.bias = tf.Variable(np.zeros(features, np_dtype), name="bias")
            self._lower_indices = np.stack(np.tril_indices(features, k=-1), axis=-1)
            self._upper_indices = np.stack(np.triu_indices(features, k=1), axis=-1)
            super().__init__(forward_min_event_ndims=1, is_constant_jacobian=True, validate_args=validate_args,
                             dtype=dtype, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()

    def upper_diag(self):
        """The diagonal of U, softplus(u) + eps > 0."""
        return tf.nn.softplus(self.unconstrained_upper_diag) + self.eps

    def lower_upper(self):
        """(L, U) as dense (D, D) matrices."""
        shape = [self.features, self.features]
        lower = tf.scatter_nd(self._lower_indices, self.lower_entries, shape) + tf.eye(self.features, dtype=self.dtype)
        upper = tf.scatter_nd(self._upper_indices, self.upper_entries, shape) + tf.linalg.diag(self.upper_diag())
        return lower, upper

    def weight(self):
        """W = L U."""
        lower, upper = self.lower_upper()
        return tf.matmul(lower, upper)

    def log_abs_det(self):
        """log|det W| = sum log diag U."""
        return tf.reduce_sum(tf.math.log(self.upper_diag()))

    def to_base(self, y):
        """Density direction: (W y + b, log|det W| per row)."""
        y = tf.convert_to_tensor(y, self.dtype)
        x = tf.matmul(y, self.weight(), transpose_b=True) + self.bias
        return x, tf.fill(tf.shape(y)[:-1], self.log_abs_det())

    def to_data(self, x):
        """Sampling direction: (W^{-1}(x - b), -log|det W| per row)."""
        x = tf.convert_to_tensor(x, self.dtype)
        lower, upper = self.lower_upper()
        columns = tf.transpose(tf.reshape(x - self.bias, [-1, self.features]))
        solved = tf.linalg.triangular_solve(upper, tf.linalg.triangular_solve(lower, columns, lower=True), lower=False)
        y = tf.reshape(tf.transpose(solved), tf.shape(x))
        return y, tf.fill(tf.shape(x)[:-1], -self.log_abs_det())

    def _forward(self, x):
        return self.to_data(x)[0]

    def _inverse(self, y):
        return self.to_base(y)[0]

    def _forward_log_det_jacobian(self, x):
        return -self.log_abs_det()

    def _inverse_log_det_jacobian(self, y):
        return self.log_abs_det()
