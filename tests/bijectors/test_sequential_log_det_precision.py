"""The D-pass log-det of an IAF-RQS block (a CaloFlow student's density) against 50-digit arithmetic.

With weights scaled up, some spline bins become nearly flat (slopes down to e^-27). The density direction of an
IAF solves z_i = RQS(x_i; theta_i(z_{<i})) feature by feature; its log-det is log RQS'(x_i), a well-conditioned
number at the known input x_i. Recomputing it afterwards as minus the one-pass log-det at the solved z goes
through the spline's inverse, whose root is ill-conditioned in a flat bin, and loses up to 1e-3 per element.

The reference shares no code with calozoo: the masked network, nflows' spline (softmax bins, softplus slopes,
linear tails) and its slope are written here in mpmath, from the MADE's weights and the solved z_{<i} (the only
float64 inputs the conditioner of a step sees).
"""

import numpy as np
import pytest
import tensorflow as tf

from calozoo.bijectors.autoregressive_flow import AutoregressiveRQSFlow
from calozoo.bijectors.rq_spline import SplineSettings

mpmath = pytest.importorskip("mpmath")
mp = mpmath.mp

FEATURES, CONTEXT, HIDDEN, BATCH = 3, 1, 8, 64
WEIGHT_SCALE = 3.0
SPLINE = SplineSettings()  # CaloFlow's: 8 bins on [-14, 14], minimum width, height and slope 1e-6


# ----- the reference, in mpmath ---------------------------------------------------------------------------
def as_mp(values) -> np.ndarray:
    return np.vectorize(lambda v: mp.mpf(float(v)), otypes=[object])(np.asarray(values))


def relu(values):
    return np.vectorize(lambda v: max(v, mp.zero), otypes=[object])(values)


def made_params(weights, inputs, context) -> np.ndarray:
    """The MADE output (D, M) for one example: relu(W_in z + b_in + relu(W_c c + b_c)) -> hidden -> output."""
    h = relu(inputs @ weights["in_kernel"] + weights["in_bias"]
             + relu(context @ weights["ctx_kernel"] + weights["ctx_bias"]))
    h = relu(h @ weights["h_kernel"] + weights["h_bias"])
    return (h @ weights["out_kernel"] + weights["out_bias"]).reshape(FEATURES, -1)


def knots(raw, minimum, bound):
    """nflows' knots: minimum + (1 - K minimum) softmax, cumulated onto [-B, B]."""
    exps = [mp.exp(v) for v in raw]
    sizes = [minimum + (1 - minimum * len(raw)) * e / mp.fsum(exps) for e in exps]
    positions = [-bound]
    for size in sizes:
        positions.append(positions[-1] + 2 * bound * size)
    positions[-1] = bound
    return positions


def log_slope(x, params, settings):
    """log RQS'(x) of nflows' spline with linear tails (0 outside [-B, B])."""
    k, bound = settings.num_bins, mp.mpf(settings.tail_bound)
    if abs(x) > bound:
        return mp.zero
    xs = knots(params[:k], settings.min_bin_width, bound)
    ys = knots(params[k : 2 * k], settings.min_bin_height, bound)
    slopes = [mp.one] + [settings.min_derivative + mp.log1p(mp.exp(v)) for v in params[2 * k :]] + [mp.one]
    b = max(i for i in range(k) if xs[i] <= x)
    w, h = xs[b + 1] - xs[b], ys[b + 1] - ys[b]
    t, s, d0, d1 = (x - xs[b]) / w, h / w, slopes[b], slopes[b + 1]
    denominator = s + (d0 + d1 - 2 * s) * t * (1 - t)
    return mp.log(s**2 * (d1 * t**2 + 2 * s * t * (1 - t) + d0 * (1 - t) ** 2)) - 2 * mp.log(denominator)


def reference_log_dets(weights, x, solved, context, settings) -> list[float]:
    """log|dz_i/dx_i| per feature of one example, with the conditioner fed the solved z (its masks hide z_{>=i})."""
    with mp.workdps(50):
        params = made_params(weights, as_mp(solved), as_mp(context))
        return [float(log_slope(mp.mpf(float(x[i])), params[i], settings)) for i in range(FEATURES)]


# ----- the block under test -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def steep_flow():
    """A one-block IAF-RQS flow (a student) whose MADE weights are scaled up: bins of extreme width ratios."""
    flow = AutoregressiveRQSFlow(FEATURES, CONTEXT, HIDDEN, num_blocks=1, kind="iaf", spline=SPLINE, seed=0)
    for variable in flow.trainable_variables:
        variable.assign(WEIGHT_SCALE * variable)
    return flow


@pytest.fixture(scope="module")
def steep_block(steep_flow):
    return steep_flow.blocks[0]


@pytest.fixture(scope="module")
def reference(steep_block):
    """(x, context, per-element reference log-dets (B, D)) for inputs spread over the spline's range."""
    rng = np.random.default_rng(11)
    x = rng.uniform(-13.0, 13.0, (BATCH, FEATURES))
    context = rng.uniform(-1.0, 1.0, (BATCH, CONTEXT))
    solved = steep_block.sequential(x, context).numpy()
    made = steep_block.made
    weights = {name: as_mp(v.numpy()) for name, v in [
        ("in_kernel", made.in_kernel), ("in_bias", made.in_bias), ("ctx_kernel", made.ctx_kernel),
        ("ctx_bias", made.ctx_bias), ("h_kernel", made.hidden_kernels[0]), ("h_bias", made.hidden_biases[0]),
        ("out_kernel", made.out_kernel), ("out_bias", made.out_bias)]}
    logdets = [reference_log_dets(weights, x[n], solved[n], context[n], SPLINE) for n in range(BATCH)]
    return x, context, np.array(logdets)


def test_the_case_is_extreme(reference):
    *_, logdets = reference
    assert logdets.min() < -20.0, "some elements must sit where the spline's slope is below e^-20"


def test_sequential_log_det_matches_50_digit_arithmetic(steep_block, reference):
    x, context, logdets = reference
    _, logdet = steep_block.sequential_with_log_det(x, context)
    np.testing.assert_allclose(logdet.numpy(), logdets.sum(axis=1), rtol=0, atol=1e-9)


def test_the_flow_and_the_tfp_bijector_keep_the_same_log_det(steep_block, reference):
    x, context, logdets = reference
    tfp_logdet = steep_block.forward_log_det_jacobian(tf.constant(x), event_ndims=1, conditional_input=context)
    np.testing.assert_allclose(tfp_logdet.numpy(), logdets.sum(axis=1), rtol=0, atol=1e-9)


def test_the_students_density_pass_keeps_it(steep_flow, reference):
    x, context, logdets = reference
    np.testing.assert_allclose(steep_flow.to_base(x, context).logdet.numpy(), logdets.sum(axis=1), rtol=0, atol=1e-9)
