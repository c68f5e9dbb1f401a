"""Rational-quadratic spline with nflows' unconstrained parametrisation and linear (identity) tails."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = [
    "PARAMETRIZATIONS",
    "SplineSettings",
    "identity_init_beta",
    "identity_init_boundary_slope",
    "UnconstrainedRationalQuadraticSpline",
    "num_spline_params",
    "rqs_forward",
    "rqs_inverse",
    "soft_clip",
]


PARAMETRIZATIONS = ("nflows", "zuko", "nflows-identity-init")


def identity_init_beta(min_derivative: float) -> float:
    """beta = ln 2 / (1 - min_d) of the nflows fork's identity-initialised slopes: min_d + softplus(0) / beta = 1."""
    return float(np.log(2.0) / (1.0 - min_derivative))


def identity_init_boundary_slope(min_derivative: float) -> float:
    """The boundary slope of the nflows fork's identity-initialised spline: min_d + softplus(beta c) / beta with
    nflows' boundary constant c = ln(e^(1 - min_d) - 1) (1.2950 for min_d 1e-3, not 1)."""
    beta = identity_init_beta(min_derivative)
    c = np.log(np.expm1(1.0 - min_derivative))
    return float(min_derivative + np.logaddexp(0.0, beta * c) / beta)


class SplineSettings:
    """Shape of an RQS: `num_bins` bins on [-tail_bound, tail_bound], minimum bin width/height/slope.

    The CaloFlow family uses 8 bins, tail bound 14 and minima of 1e-6 (nflows' defaults are 1e-3).

    `parametrization="zuko"` is zuko 1.1's MonotonicRQS instead of nflows': raw widths and heights soft-clipped by
    x / (1 + |2x / ln(slope)|) before the softmax, interior slopes exp(x / (1 + |x / ln(slope)|)) (CaloPointFlow
    uses bound 5, slope 1e-4 and minima 0); the minimum sizes still apply on top.

    `parametrization="nflows-identity-init"` is the slope form of the ConvL2LFlow nflows fork
    (ThorstenBuss/nflows @ 138f868, `enable_identity_init=True`): every slope, the two boundary ones included, is
    `min_d + softplus(beta raw) / beta` with beta = ln 2 / (1 - min_d), and the boundary raw values are nflows'
    constant ln(e^(1 - min_d) - 1). Interior slopes are 1 at raw 0; the boundary slopes are not 1 (1.2950 for
    min_d 1e-3), so the spline's slope jumps at +-B where the linear tails begin, as in the reference.
    """

    def __init__(self, num_bins=8, tail_bound=14.0, min_bin_width=1e-6, min_bin_height=1e-6, min_derivative=1e-6,
                 parametrization="nflows", slope=1e-4):
        if num_bins < 2:
            raise ValueError(f"`num_bins` must be >= 2; got {num_bins}.")
        if tail_bound <= 0:
            raise ValueError(f"`tail_bound` must be > 0; got {tail_bound}.")
        if min(min_bin_width, min_bin_height, min_derivative) < 0:
            raise ValueError("`min_bin_width`, `min_bin_height` and `min_derivative` must be >= 0.")
        if min_bin_width * num_bins >= 1.0 or min_bin_height * num_bins >= 1.0:
            raise ValueError(f"`min_bin_width`/`min_bin_height` times `num_bins` must be < 1; got {num_bins} bins.")
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"`parametrization` must be one of {PARAMETRIZATIONS}; got {parametrization!r}.")
        if not 0.0 < slope < 1.0:
            raise ValueError(f"`slope` must lie in (0, 1); got {slope}.")
        self.parametrization = parametrization
        self.slope = float(slope)
        self.num_bins = int(num_bins)
        self.tail_bound = float(tail_bound)
        self.min_bin_width = float(min_bin_width)
        self.min_bin_height = float(min_bin_height)
        self.min_derivative = float(min_derivative)

    @property
    def num_params(self) -> int:
        """Unconstrained parameters per feature: K widths, K heights, K-1 interior slopes."""
        return 3 * self.num_bins - 1

    def as_dict(self) -> dict:
        return dict(
            num_bins=self.num_bins,
            tail_bound=self.tail_bound,
            min_bin_width=self.min_bin_width,
            min_bin_height=self.min_bin_height,
            min_derivative=self.min_derivative,
            parametrization=self.parametrization,
            slope=self.slope,
        )


def num_spline_params(num_bins: int) -> int:
    """Unconstrained parameters per feature of an RQS with `num_bins` bins."""
    return 3 * num_bins - 1


def soft_clip(x, bound):
    """x / (1 + |x| / bound): the identity near 0, smoothly limited to (-bound, bound) (zuko's soft clipping)."""
    return x / (1.0 + tf.abs(x) / bound)


def _knots(unnormalized, min_size, bound, settings=None):
    """Knot positions (..., K+1) on [-bound, bound] and bin sizes (..., K) from raw values (..., K)."""
    num_bins = unnormalized.shape[-1]
    if settings is not None and settings.parametrization == "zuko":
        unnormalized = soft_clip(unnormalized, -np.log(settings.slope) / 2.0)
    sizes = min_size + (1.0 - min_size * num_bins) * tf.nn.softmax(unnormalized, axis=-1)
    cumulative = tf.math.cumsum(sizes, axis=-1)
    # Pin both ends exactly so that rounding never moves the interval.
    inner = 2.0 * bound * cumulative[..., :-1] - bound
    lower = tf.fill(tf.shape(inner[..., :1]), tf.constant(-bound, inner.dtype))
    upper = tf.fill(tf.shape(inner[..., :1]), tf.constant(bound, inner.dtype))
    knots = tf.concat([lower, inner, upper], axis=-1)
    return knots, knots[..., 1:] - knots[..., :-1]


def _interior_slopes(unnormalized, min_derivative, settings=None):
    """Slopes at interior knots from raw values, elementwise."""
    if settings is not None and settings.parametrization == "zuko":
        return min_derivative + tf.exp(soft_clip(unnormalized, -np.log(settings.slope)))
    if settings is not None and settings.parametrization == "nflows-identity-init":
        beta = identity_init_beta(min_derivative)
        return min_derivative + tf.nn.softplus(beta * unnormalized) / beta
    return min_derivative + tf.nn.softplus(unnormalized)


def _boundary_slope(min_derivative, settings=None) -> float:
    """The slope at -B and +B: 1 (linear tails), except for the "nflows-identity-init" parametrization (see
    `SplineSettings`)."""
    if settings is not None and settings.parametrization == "nflows-identity-init":
        return identity_init_boundary_slope(min_derivative)
    return 1.0


def _bin_slopes(unnormalized, index, min_derivative, settings=None):
    """The slopes at the lower and upper knot of bin `index`, from the K-1 raw interior values.

    The raw values are selected first and only those two go through the softplus (or exp): the spline's
    transcendental functions are most of its cost, and selecting before or after gives the same numbers."""
    k = unnormalized.shape[-1] + 1
    boundary = tf.constant(_boundary_slope(min_derivative, settings), unnormalized.dtype)
    lower = _interior_slopes(_select(unnormalized, index - 1, k - 1), min_derivative, settings)
    upper = _interior_slopes(_select(unnormalized, index, k - 1), min_derivative, settings)
    return tf.where(index == 0, boundary, lower), tf.where(index == k - 1, boundary, upper)


def _select(values, index, num):
    """values[..., index] for an integer index of the leading shape, via a one-hot contraction."""
    return tf.reduce_sum(values * tf.one_hot(index, num, dtype=values.dtype), axis=-1)


def _bin_quantities(params, settings, locate, positions):
    """Per-element bin geometry of the spline for the bin that contains `positions`.

    `locate` is 'x' to search the input knots (forward) or 'y' for the output knots (inverse).
    """
    k = settings.num_bins
    bound = settings.tail_bound
    raw_w, raw_h, raw_d = params[..., :k], params[..., k : 2 * k], params[..., 2 * k :]
    x_knots, widths = _knots(raw_w, settings.min_bin_width, bound, settings)
    y_knots, heights = _knots(raw_h, settings.min_bin_height, bound, settings)
    knots = x_knots if locate == "x" else y_knots
    # Bin index = number of interior knots at or below the position.
    index = tf.reduce_sum(tf.cast(positions[..., None] >= knots[..., 1:k], tf.int32), axis=-1)
    d0, d1 = _bin_slopes(raw_d, index, settings.min_derivative, settings)
    return dict(
        x0=_select(x_knots[..., :k], index, k),
        y0=_select(y_knots[..., :k], index, k),
        w=_select(widths, index, k),
        h=_select(heights, index, k),
        d0=d0,
        d1=d1,
    )


def _knots_by_bin(raw, min_size, bound, settings=None):
    """`_knots` on a list of K per-bin tensors (...,): the K+1 knot positions as a list, lowest first."""
    num_bins = len(raw)
    if settings is not None and settings.parametrization == "zuko":
        raw = [soft_clip(r, -np.log(settings.slope) / 2.0) for r in raw]
    peak = raw[0]
    for r in raw[1:]:
        peak = tf.maximum(peak, r)
    weights = [tf.exp(r - peak) for r in raw]
    total = weights[0]
    for w in weights[1:]:
        total = total + w
    scale = (1.0 - min_size * num_bins) / total
    knots, cumulative = [tf.fill(tf.shape(peak), tf.constant(-bound, peak.dtype))], None
    for w in weights[:-1]:
        size = min_size + w * scale
        cumulative = size if cumulative is None else cumulative + size
        knots.append(2.0 * bound * cumulative - bound)
    return knots + [tf.fill(tf.shape(peak), tf.constant(bound, peak.dtype))]


def _pick(values, index):
    """values[index] elementwise from a list of same-shaped tensors, by a chain of selects (no gather)."""
    picked = values[0]
    for k in range(1, len(values)):
        picked = tf.where(index == k, values[k], picked)
    return picked


def _bin_quantities_by_parameter(params, settings, locate, positions):
    """`_bin_quantities` for parameters laid out (..., 3K-1, D) against positions (..., D).

    The same numbers up to rounding, from K-long lists of (..., D) tensors: every operation then runs along the
    contiguous feature axis, which XLA's CPU code vectorises (about half the time of the (..., D, 3K-1) layout,
    whose short last axis it does not)."""
    k = settings.num_bins
    bound = settings.tail_bound
    raw = tf.unstack(params, axis=-2)
    x_knots = _knots_by_bin(raw[:k], settings.min_bin_width, bound, settings)
    y_knots = _knots_by_bin(raw[k : 2 * k], settings.min_bin_height, bound, settings)
    knots = x_knots if locate == "x" else y_knots
    index = tf.zeros_like(positions, tf.int32)
    for knot in knots[1:k]:
        index += tf.cast(positions >= knot, tf.int32)
    raw_d = raw[2 * k :]
    boundary = tf.constant(_boundary_slope(settings.min_derivative, settings), params.dtype)
    lower = _interior_slopes(_pick([raw_d[0]] + raw_d, index), settings.min_derivative, settings)
    upper = _interior_slopes(_pick(raw_d + [raw_d[-1]], index), settings.min_derivative, settings)
    x0, y0 = _pick(x_knots[:k], index), _pick(y_knots[:k], index)
    return dict(
        x0=x0,
        y0=y0,
        w=_pick(x_knots[1:], index) - x0,
        h=_pick(y_knots[1:], index) - y0,
        d0=tf.where(index == 0, boundary, lower),
        d1=tf.where(index == k - 1, boundary, upper),
    )


def _log_slope(theta, q):
    """log dy/dx of the rational-quadratic segment at relative position theta."""
    delta = q["h"] / q["w"]
    one_minus = 1.0 - theta
    denominator = delta + (q["d0"] + q["d1"] - 2.0 * delta) * theta * one_minus
    numerator = delta**2 * (q["d1"] * theta**2 + 2.0 * delta * theta * one_minus + q["d0"] * one_minus**2)
    return tf.math.log(numerator) - 2.0 * tf.math.log(denominator)


def _geometry(params, settings, locate, positions, param_axis):
    if param_axis == -1:
        return _bin_quantities(params, settings, locate, positions)
    if param_axis == -2:
        return _bin_quantities_by_parameter(params, settings, locate, positions)
    raise ValueError(f"`param_axis` must be -1 (..., 3K-1) or -2 (..., 3K-1, D); got {param_axis}.")


def rqs_forward(x, params, settings: SplineSettings, param_axis: int = -1):
    """y = RQS(x) elementwise and log|dy/dx|; identity with log-det 0 outside [-B, B].

    Args:
        x: inputs, shape (...,).
        params: unconstrained parameters, shape (..., 3K-1): K widths, K heights, K-1 slopes; with
            `param_axis=-2`, shape (..., 3K-1, D) for x of shape (..., D) (the faster layout on CPU).
        settings: the spline's bins, bound and minima.
        param_axis: where the 3K-1 parameters sit, -1 or -2.
    """
    bound = settings.tail_bound
    inside = (x >= -bound) & (x <= bound)
    xc = tf.clip_by_value(x, -bound, bound)
    q = _geometry(params, settings, "x", xc, param_axis)
    theta = tf.clip_by_value((xc - q["x0"]) / q["w"], 0.0, 1.0)
    delta = q["h"] / q["w"]
    one_minus = 1.0 - theta
    numerator = q["h"] * (delta * theta**2 + q["d0"] * theta * one_minus)
    denominator = delta + (q["d0"] + q["d1"] - 2.0 * delta) * theta * one_minus
    y = q["y0"] + numerator / denominator
    logdet = _log_slope(theta, q)
    return tf.where(inside, y, x), tf.where(inside, logdet, tf.zeros_like(logdet))


def rqs_inverse(y, params, settings: SplineSettings, param_axis: int = -1):
    """x = RQS^{-1}(y) elementwise and log|dx/dy|; identity with log-det 0 outside [-B, B]. Arguments as
    `rqs_forward`."""
    bound = settings.tail_bound
    inside = (y >= -bound) & (y <= bound)
    yc = tf.clip_by_value(y, -bound, bound)
    q = _geometry(params, settings, "y", yc, param_axis)
    delta = q["h"] / q["w"]
    offset = yc - q["y0"]
    curvature = q["d0"] + q["d1"] - 2.0 * delta
    a = offset * curvature + q["h"] * (delta - q["d0"])
    b = q["h"] * q["d0"] - offset * curvature
    c = -delta * offset
    discriminant = tf.maximum(b**2 - 4.0 * a * c, 0.0)
    # The numerically stable root of the quadratic (the other one lies outside the bin).
    theta = tf.clip_by_value((2.0 * c) / (-b - tf.sqrt(discriminant)), 0.0, 1.0)
    x = q["x0"] + theta * q["w"]
    logdet = -_log_slope(theta, q)
    return tf.where(inside, x, y), tf.where(inside, logdet, tf.zeros_like(logdet))


class UnconstrainedRationalQuadraticSpline(tfb.Bijector):
    """Elementwise monotonic rational-quadratic spline (Durkan et al. 2019) parametrised as in nflows.

    Bin widths/heights are `min + (1 - K min) softmax(raw)` scaled to [-B, B]; interior slopes are
    `min_d + softplus(raw)`; the boundary slopes are 1 and the map is the identity outside [-B, B].

    forward: y = RQS(x); inverse: the root of a quadratic per element; both are one pass.

    References:
        Durkan et al., Neural Spline Flows, arXiv:1906.04032.

    Example:
        >>> import numpy as np
        >>> bij = UnconstrainedRationalQuadraticSpline(np.zeros((3, 23)), SplineSettings())
        >>> np.allclose(bij.forward(np.array([-3.5, 0.0, 20.0])), [-3.5, 0.0, 20.0])  # knots and tails stay put
        True
    """

    def __init__(self, params, settings: SplineSettings | None = None, validate_args=False, name=None):
        parameters = dict(locals())
        name = name or "unconstrained_rational_quadratic_spline"
        with tf.name_scope(name) as name:
            self._params = tf.convert_to_tensor(params)
            self._settings = settings or SplineSettings()
            if self._params.shape[-1] != self._settings.num_params:
                raise ValueError(
                    f"`params` must have {self._settings.num_params} entries in its last axis for "
                    f"{self._settings.num_bins} bins; got {self._params.shape[-1]}."
                )
            super().__init__(
                forward_min_event_ndims=0,
                validate_args=validate_args,
                dtype=self._params.dtype,
                parameters=parameters,
                name=name,
            )

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()

    def _forward(self, x):
        return rqs_forward(x, self._params, self._settings)[0]

    def _inverse(self, y):
        return rqs_inverse(y, self._params, self._settings)[0]

    def _forward_log_det_jacobian(self, x):
        return rqs_forward(x, self._params, self._settings)[1]

    def _inverse_log_det_jacobian(self, y):
        return rqs_inverse(y, self._params, self._settings)[1]

