"""Tests of calozoo.bijectors.rq_spline: the nflows-parametrised rational-quadratic spline with linear tails."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from calozoo.bijectors.rq_spline import (
    SplineSettings,
    UnconstrainedRationalQuadraticSpline,
    num_spline_params,
    rqs_forward,
    rqs_inverse,
)
from tests.bijectors.helpers import assert_bijective, assert_relative_close

tfb = tfp.bijectors

SETTINGS = [
    SplineSettings(),  # CaloFlow: K 8, B 14, minima 1e-6
    SplineSettings(num_bins=5, tail_bound=3.0, min_bin_width=1e-3, min_bin_height=1e-3, min_derivative=1e-3),  # nflows
    SplineSettings(8, 5.0, 0.0, 0.0, 0.0, parametrization="zuko"),  # CaloPointFlow (zuko 1.1)
]
SETTINGS_IDS = ["caloflow", "nflows-defaults", "zuko"]


def random_params(n, settings, scale=2.0, seed=0):
    rng = np.random.default_rng(seed)
    return scale * rng.normal(size=(n, settings.num_params))


def points(n, settings, seed=1):
    """Uniform on [-1.3 B, 1.3 B]: about a quarter of the points are in the identity tails."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.3 * settings.tail_bound, 1.3 * settings.tail_bound, size=n)


def nflows_geometry(params, settings):
    """Bin widths, heights (each summing to 2B) and the K+1 knot slopes, computed as nflows does."""
    k, bound = settings.num_bins, settings.tail_bound
    params = tf.convert_to_tensor(params, tf.float64)
    raw_w, raw_h, raw_d = params[..., :k], params[..., k : 2 * k], params[..., 2 * k :]
    widths = 2 * bound * (settings.min_bin_width + (1 - k * settings.min_bin_width) * tf.nn.softmax(raw_w, axis=-1))
    heights = 2 * bound * (settings.min_bin_height + (1 - k * settings.min_bin_height) * tf.nn.softmax(raw_h, axis=-1))
    interior = settings.min_derivative + tf.nn.softplus(raw_d)
    ones = tf.ones_like(interior[..., :1])
    return widths, heights, interior, tf.concat([ones, interior, ones], axis=-1)


@pytest.mark.parametrize("settings", SETTINGS, ids=SETTINGS_IDS)
def test_bijective_with_random_params(settings):
    params = random_params(400, settings)
    x = points(400, settings)
    y = points(400, settings, seed=2)
    bij = UnconstrainedRationalQuadraticSpline(params, settings)
    assert_bijective(bij, x, event_ndims=0, y=y, rtol=1e-8)


def test_extreme_params_are_finite_and_consistent():
    """Very peaked softmaxes put bins at their minimum size (1e-6 of the range) next to one bin holding almost
    the whole range, so slopes reach ~1e-19: x -> y -> x cannot be exact in float64 (one ulp of y is a large
    step in x) and is not asserted; what must hold is finiteness, y -> x -> y, and forward(inverse(forward(x)))
    = forward(x)."""
    settings = SplineSettings()
    params = random_params(400, settings, scale=25.0, seed=3)
    x = tf.constant(points(400, settings))
    y = tf.constant(points(400, settings, seed=4))
    z, fldj = rqs_forward(x, params, settings)
    x_back, ildj_z = rqs_inverse(tf.identity(z), params, settings)
    u, ildj_y = rqs_inverse(y, params, settings)
    y_back, fldj_u = rqs_forward(tf.identity(u), params, settings)
    for value, what in ((z, "forward"), (fldj, "fldj"), (x_back, "inverse"), (ildj_z, "ildj"), (u, "inverse"),
                        (fldj_u, "fldj")):
        assert np.all(np.isfinite(value.numpy())), f"{what} is not finite"
    assert_relative_close(y_back, y, 1e-8, "y -> inverse -> forward")
    assert_relative_close(rqs_forward(x_back, params, settings)[0], z, 1e-8, "forward(inverse(forward(x)))")
    assert_relative_close(-fldj_u, ildj_y, 1e-8, "ildj(y) vs -fldj(inverse(y))")


@pytest.mark.parametrize("settings", SETTINGS, ids=SETTINGS_IDS)
def test_identity_outside_the_bound(settings):
    bound = settings.tail_bound
    rng = np.random.default_rng(5)
    outside = np.concatenate([rng.uniform(-5 * bound, -bound, 100), rng.uniform(bound, 5 * bound, 100)])
    outside = outside[np.abs(outside) > bound]
    params = random_params(outside.size, settings)
    y, fldj = rqs_forward(tf.constant(outside), params, settings)
    x, ildj = rqs_inverse(tf.constant(outside), params, settings)
    np.testing.assert_array_equal(y.numpy(), outside)
    np.testing.assert_array_equal(x.numpy(), outside)
    np.testing.assert_array_equal(fldj.numpy(), 0.0)
    np.testing.assert_array_equal(ildj.numpy(), 0.0)


@pytest.mark.parametrize("settings", SETTINGS, ids=SETTINGS_IDS)
def test_continuous_with_slope_one_at_the_bounds(settings):
    bound = settings.tail_bound
    n = 50
    params = random_params(n, settings, seed=6)
    bij = UnconstrainedRationalQuadraticSpline(params, settings)
    for edge in (-bound, bound):
        inward = -np.sign(edge)
        at = np.full(n, edge)
        np.testing.assert_allclose(bij.forward(at).numpy(), at, rtol=0, atol=1e-12 * bound)
        np.testing.assert_allclose(bij.inverse(at).numpy(), at, rtol=0, atol=1e-12 * bound)
        # The log slope is 0 on both sides of the boundary (within O(h) just inside).
        np.testing.assert_allclose(bij.forward_log_det_jacobian(at, event_ndims=0).numpy(), 0.0, atol=1e-9)
        for h in (1e-9, 1e-10):
            inside = tf.constant(edge + inward * h * np.ones(n))
            outside = tf.constant(edge - inward * h * np.ones(n))
            # Continuity with slope 1: f(B -/+ h) = B -/+ h + O(h^2), well below h / 100 for these h.
            tolerance = 1e-2 * h + 1e-14 * bound
            np.testing.assert_allclose(bij.forward(inside).numpy(), inside.numpy(), rtol=0, atol=tolerance)
            np.testing.assert_array_equal(bij.forward(outside).numpy(), outside.numpy())
            with tf.GradientTape() as tape:
                tape.watch(inside)
                value = bij.forward(tf.identity(inside))
            slope = tape.gradient(value, inside).numpy()
            np.testing.assert_allclose(slope, 1.0, atol=1e-3)
            np.testing.assert_allclose(bij.forward_log_det_jacobian(inside, event_ndims=0).numpy(), 0.0, atol=1e-3)


@pytest.mark.parametrize("settings", SETTINGS[:2], ids=SETTINGS_IDS[:2])  # nflows geometry
def test_agrees_with_tfp_rational_quadratic_spline(settings):
    n = 300
    params = random_params(n, settings, seed=7)
    widths, heights, interior_slopes, _ = nflows_geometry(params, settings)
    reference = tfb.RationalQuadraticSpline(widths, heights, interior_slopes, range_min=-settings.tail_bound)
    ours = UnconstrainedRationalQuadraticSpline(params, settings)
    x = tf.constant(points(n, settings, seed=8))
    y = tf.constant(points(n, settings, seed=9))
    assert_relative_close(ours.forward(x), reference.forward(x), 1e-10, "forward vs tfb.RationalQuadraticSpline")
    assert_relative_close(ours.inverse(y), reference.inverse(y), 1e-10, "inverse vs tfb.RationalQuadraticSpline")
    assert_relative_close(
        ours.forward_log_det_jacobian(x, event_ndims=0),
        reference.forward_log_det_jacobian(x, event_ndims=0),
        1e-9,
        "fldj vs tfb.RationalQuadraticSpline",
    )
    assert_relative_close(
        ours.inverse_log_det_jacobian(y, event_ndims=0),
        reference.inverse_log_det_jacobian(y, event_ndims=0),
        1e-9,
        "ildj vs tfb.RationalQuadraticSpline",
    )


def test_equal_bins_and_unit_slopes_give_the_identity():
    """Equal bins (raw widths/heights 0) and every slope 1 (raw = log(e^{1-min_d} - 1)) give the identity."""
    settings = SplineSettings()
    k = settings.num_bins
    raw_slope = np.log(np.expm1(1.0 - settings.min_derivative))
    params = np.concatenate([np.zeros((20, 2 * k)), np.full((20, k - 1), raw_slope)], axis=-1)
    x = np.linspace(-settings.tail_bound, settings.tail_bound, 20)
    y, logdet = rqs_forward(tf.constant(x), params, settings)
    np.testing.assert_allclose(y.numpy(), x, atol=1e-12)
    np.testing.assert_allclose(logdet.numpy(), 0.0, atol=1e-12)


def knot_candidates(sizes, settings):
    """Each row's K+1 knots, computed in two roundings, plus the float64 neighbours: (n, 4(K+1)) values.

    The first block is nflows' formula 2B cumsum(sizes) - B (what calozoo evaluates), the second TFP's
    -B + cumsum(2B sizes); both have the ends pinned to -B and B.
    """
    bound = settings.tail_bound
    n = sizes.shape[0]
    fractions = sizes / (2 * bound)
    lower = tf.fill([n, 1], tf.constant(-bound, tf.float64))
    upper = tf.fill([n, 1], tf.constant(bound, tf.float64))
    nflows = tf.concat([lower, 2 * bound * tf.cumsum(fractions, axis=-1)[:, :-1] - bound, upper], -1).numpy()
    tfp_style = tf.concat([lower, -bound + tf.cumsum(sizes, axis=-1)[:, :-1], upper], -1).numpy()
    candidates = [nflows, tfp_style, np.nextafter(nflows, np.inf), np.nextafter(nflows, -np.inf)]
    return np.concatenate(candidates, axis=-1), np.concatenate([nflows] * 4, axis=-1)


@pytest.mark.parametrize("settings", SETTINGS[:2], ids=SETTINGS_IDS[:2])  # nflows geometry
def test_inputs_exactly_at_the_knots_are_finite(settings):
    bound = settings.tail_bound
    n = 40
    params = tf.constant(random_params(n, settings, seed=10))
    widths, heights, _, _ = nflows_geometry(params, settings)
    x_inputs, x_knots = knot_candidates(widths, settings)
    y_inputs, y_knots = knot_candidates(heights, settings)
    x_inputs, y_inputs = tf.constant(x_inputs), tf.constant(y_inputs)
    tiled = tf.repeat(params[:, None, :], x_inputs.shape[1], axis=1)  # (n, 4(K+1), 3K-1): each row at its own knots
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x_inputs, y_inputs, tiled])
        y, fldj = rqs_forward(x_inputs, tiled, settings)
        x, ildj = rqs_inverse(y_inputs, tiled, settings)
        total = tf.reduce_sum(y) + tf.reduce_sum(fldj) + tf.reduce_sum(x) + tf.reduce_sum(ildj)
    for value, what in ((y, "forward"), (fldj, "fldj"), (x, "inverse"), (ildj, "ildj")):
        assert np.all(np.isfinite(value.numpy())), f"{what} at the knots is not finite"
    # A knot maps to the matching knot (up to the rounding of the knot itself).
    np.testing.assert_allclose(y.numpy(), y_knots, rtol=0, atol=1e-10 * bound)
    np.testing.assert_allclose(x.numpy(), x_knots, rtol=0, atol=1e-10 * bound)
    for source, what in ((x_inputs, "x"), (y_inputs, "y"), (tiled, "params")):
        gradient = tape.gradient(total, source)
        assert np.all(np.isfinite(gradient.numpy())), f"gradient wrt {what} at the knots is not finite"


def test_float32_runs():
    settings = SplineSettings()
    params = tf.constant(random_params(10, settings), tf.float32)
    x = tf.constant(points(10, settings), tf.float32)
    y, logdet = rqs_forward(x, params, settings)
    back, inverse_logdet = rqs_inverse(y, params, settings)
    assert y.dtype == tf.float32 and back.dtype == tf.float32
    np.testing.assert_allclose(back.numpy(), x.numpy(), atol=1e-3)
    np.testing.assert_allclose(logdet.numpy(), -inverse_logdet.numpy(), atol=1e-3)


def test_settings_sizes():
    settings = SplineSettings(num_bins=8)
    assert settings.num_params == 23 == num_spline_params(8)
    assert SplineSettings(num_bins=2).num_params == 5
    assert settings.as_dict() == dict(
        num_bins=8, tail_bound=14.0, min_bin_width=1e-6, min_bin_height=1e-6, min_derivative=1e-6,
        parametrization="nflows", slope=1e-4,
    )


def test_settings_validation():
    with pytest.raises(ValueError, match=r"^`num_bins` must be >= 2; got 1\.$"):
        SplineSettings(num_bins=1)
    with pytest.raises(ValueError, match=r"`min_bin_width`/`min_bin_height` times `num_bins` must be < 1; got 8 bins"):
        SplineSettings(num_bins=8, min_bin_width=0.125)
    with pytest.raises(ValueError, match=r"`min_bin_width`/`min_bin_height` times `num_bins` must be < 1; got 4 bins"):
        SplineSettings(num_bins=4, min_bin_height=0.3)


def test_param_count_validation():
    with pytest.raises(ValueError, match=r"`params` must have 23 entries in its last axis for 8 bins; got 22\."):
        UnconstrainedRationalQuadraticSpline(np.zeros((3, 22)), SplineSettings())


def test_zuko_parametrization_matches_zuko_formulas():
    """Knots from softmax(soft-clipped raw) and interior slopes exp(soft-clipped raw), as zuko's MonotonicRQS."""
    settings = SplineSettings(4, 5.0, 0.0, 0.0, 0.0, parametrization="zuko", slope=1e-4)
    raw = np.array([[30.0, -2.0, 0.5, 1.0, 0.0, 0.0, 0.0, 0.0, 40.0, -40.0, 0.3]])
    log_slope = np.log(1e-4)
    clipped_w = raw[0, :4] / (1 + np.abs(2 * raw[0, :4] / log_slope))
    widths = np.exp(clipped_w) / np.exp(clipped_w).sum() * 10.0
    slopes = np.exp(raw[0, 8:] / (1 + np.abs(raw[0, 8:] / log_slope)))
    assert slopes.max() < 1e4 and slopes.min() > 1e-4  # the soft clip bounds the slopes
    x_first_knot = -5.0 + widths[0]
    # at the first interior knot the spline value is the first height knot (-5 + 10/4) and the slope is slopes[0]
    y, logdet = rqs_forward(tf.constant([x_first_knot]), tf.constant(raw), settings)
    np.testing.assert_allclose(y.numpy(), [-5.0 + 2.5], rtol=1e-10)
    np.testing.assert_allclose(logdet.numpy(), [np.log(slopes[0])], rtol=1e-8)
    with pytest.raises(ValueError, match="parametrization"):
        SplineSettings(parametrization="torch")


@pytest.mark.parametrize("settings", SETTINGS + [SplineSettings(6, 4.0, parametrization="nflows-identity-init")],
                         ids=SETTINGS_IDS + ["identity-init"])
def test_parameter_major_layout_gives_the_same_spline(settings):
    """`param_axis=-2` (params (..., 3K-1, D), the MADE's `by_parameter` layout) is the same map and log-det as the
    (..., D, 3K-1) layout, to float64 rounding, tails included."""
    params = random_params(60, settings, scale=3.0).reshape(5, 12, settings.num_params)
    by_parameter = np.swapaxes(params, -1, -2)
    x = points(60, settings).reshape(5, 12)
    for fn in (rqs_forward, rqs_inverse):
        expected = fn(tf.constant(x), tf.constant(params), settings)
        got = fn(tf.constant(x), tf.constant(by_parameter), settings, param_axis=-2)
        for name, a, b in zip(("value", "log-det"), got, expected):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-11, atol=1e-11, err_msg=f"{fn.__name__} {name}")


def test_an_unknown_parameter_axis_is_refused():
    settings = SplineSettings()
    with pytest.raises(ValueError, match="`param_axis` must be -1"):
        rqs_forward(tf.zeros([3]), tf.zeros([3, settings.num_params]), settings, param_axis=0)
