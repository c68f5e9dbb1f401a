"""Tests of calozoo.bijectors.masked_autoregressive: the MAF-RQS block and the IAF-RQS block (its tfb.Invert)."""

import numpy as np
import pytest
import tensorflow as tf

from calozoo.bijectors.made import MADE
from calozoo.bijectors.masked_autoregressive import IAF, MAF, MaskedAutoregressiveRQS, iaf_block, maf_block
from calozoo.bijectors.rq_spline import SplineSettings, rqs_forward, rqs_inverse
from tests.bijectors.helpers import assert_bijective, assert_relative_close

FEATURES, CONTEXT, HIDDEN = 8, 3, 24
SPLINE = SplineSettings(tail_bound=5.0)  # small bound: the data below also reach the identity tails


class CountingMADE(MADE):
    """A MADE that counts its one-pass calls and its sequential solves."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.solves = 0

    def by_parameter(self, *args, **kwargs):
        self.calls += 1
        return super().by_parameter(*args, **kwargs)

    def solve(self, *args, **kwargs):
        self.solves += 1
        return super().solve(*args, **kwargs)

    def reset(self):
        self.calls = self.solves = 0


def make_made(seed=0, cls=MADE):
    return cls(FEATURES, CONTEXT, HIDDEN, SPLINE.num_params, num_blocks=1, seed=seed)


def data(batch=16, seed=0):
    """(x, context, y): two point sets spread enough to reach the tails at |v| > 5, and a condition."""
    rng = np.random.default_rng(seed)
    x = 2.0 * rng.normal(size=(batch, FEATURES))
    c = rng.normal(size=(batch, CONTEXT))
    y = 2.0 * rng.normal(size=(batch, FEATURES))
    return x, c, y


def test_maf_block_is_bijective():
    x, c, y = data()
    block = maf_block(make_made(), SPLINE, name="maf")
    assert isinstance(block, MaskedAutoregressiveRQS) and block.spline_direction == "forward"
    assert_bijective(block, x, event_ndims=1, bijector_kwargs=dict(conditional_input=c), y=y, rtol=1e-8)


def test_iaf_block_is_bijective():
    x, c, y = data(seed=1)
    block = iaf_block(make_made(), SPLINE, name="iaf")
    # tfb.Invert of a non-composite bijector is TFP's private `_Invert` base class, hence no isinstance check.
    assert isinstance(block.bijector, MaskedAutoregressiveRQS) and block.bijector.spline_direction == "inverse"
    assert block.name == "iaf" and block.bijector.name == "iaf_maf"
    # tfb.Invert forwards bijector kwargs to the wrapped block.
    assert_bijective(block, x, event_ndims=1, bijector_kwargs=dict(conditional_input=c), y=y, rtol=1e-8)


def test_maf_inverse_is_one_spline_pass_on_made_of_the_data():
    """Density direction of the teacher: z = RQS(x; theta(x)), log|dz/dx| = sum of the spline log slopes."""
    made = make_made()
    block = MaskedAutoregressiveRQS(made, SPLINE, "forward")
    _, c, y = data(seed=2)
    expected, logdet = rqs_forward(tf.constant(y), made(y, c), SPLINE)
    # The block reads the MADE parameter-major (`param_axis=-2`): the same spline up to rounding.
    assert_relative_close(block.inverse(y, conditional_input=c), expected, 1e-13, "MAF inverse vs spline")
    assert_relative_close(
        block.inverse_log_det_jacobian(y, event_ndims=1, conditional_input=c), tf.reduce_sum(logdet, -1), 1e-12,
        "MAF ildj vs summed spline log-det",
    )


def test_iaf_forward_is_one_inverse_spline_pass_on_made_of_the_noise():
    """Sampling direction of the student: x = RQS^-1(z; theta(z))."""
    made = make_made()
    block = iaf_block(made, SPLINE, name="iaf")
    _, c, z = data(seed=3)
    expected, logdet = rqs_inverse(tf.constant(z), made(z, c), SPLINE)
    assert_relative_close(block.forward(z, conditional_input=c), expected, 1e-13, "IAF forward vs inverse spline")
    assert_relative_close(
        block.forward_log_det_jacobian(z, event_ndims=1, conditional_input=c), tf.reduce_sum(logdet, -1), 1e-12,
        "IAF fldj vs summed inverse-spline log-det",
    )


def test_maf_and_iaf_on_the_same_made_are_mutually_consistent():
    """On one MADE, the IAF's density direction solves x = RQS^-1(z; theta(z)) for z, i.e. it applies
    z_i = RQS(x_i; theta_i(z_{<i})); the MAF's sampling direction solves z = RQS(x; theta(x)) for x. Each is the
    exact inverse of its own one-pass direction."""
    made = make_made(seed=4)
    maf = MaskedAutoregressiveRQS(made, SPLINE, "forward")
    iaf = iaf_block(made, SPLINE, name="iaf")
    x, c, z = data(seed=5)
    # IAF density direction: z' with x = RQS^-1(z'; theta(z')).
    z_iaf = iaf.inverse(x, conditional_input=c)
    assert_relative_close(rqs_inverse(z_iaf, made(z_iaf, c), SPLINE)[0], x, 1e-10, "IAF inverse solves the equation")
    # MAF sampling direction: x' with z = RQS(x'; theta(x')).
    x_maf = maf.forward(z, conditional_input=c)
    assert_relative_close(rqs_forward(x_maf, made(x_maf, c), SPLINE)[0], z, 1e-10, "MAF forward solves the equation")
    # The two blocks share parameters: changing the MADE changes both.
    assert iaf.bijector.made is maf.made


@pytest.mark.parametrize("kind", ["maf", "iaf"])
def test_one_pass_uses_one_made_call_and_the_other_direction_is_sequential(kind):
    made = make_made(seed=6, cls=CountingMADE)
    block = maf_block(made, SPLINE, "maf") if kind == "maf" else iaf_block(made, SPLINE, "iaf")
    one_pass, sequential = (block.inverse, block.forward) if kind == "maf" else (block.forward, block.inverse)
    x, c, _ = data(seed=7)
    made.reset()
    one_pass(tf.constant(x), conditional_input=c)
    assert (made.calls, made.solves) == (1, 0)
    made.reset()
    out = sequential(tf.constant(x), conditional_input=c)
    assert (made.calls, made.solves) == (0, 1)
    # Sequential yet exact: the one-pass map undoes it.
    assert_relative_close(one_pass(tf.identity(out), conditional_input=c), x, 1e-8, "one_pass(sequential(x))")


def test_one_pass_returns_the_made_output_for_distillation():
    made = make_made(seed=8)
    block = MaskedAutoregressiveRQS(made, SPLINE, "forward")
    x, c, _ = data(seed=9)
    out, logdet, params = block.one_pass(x, c)
    assert params.shape == (16, SPLINE.num_params, FEATURES)  # parameter-major, as the spline reads it
    np.testing.assert_array_equal(params.numpy(), made.by_parameter(x, c).numpy())
    assert logdet.shape == (16,)


def test_aliases():
    assert MAF is MaskedAutoregressiveRQS
    assert IAF is iaf_block


def test_validation():
    made = make_made()
    with pytest.raises(ValueError, match=r"`spline_direction` must be 'forward' or 'inverse'; got 'sideways'\."):
        MaskedAutoregressiveRQS(made, SPLINE, "sideways")
    with pytest.raises(ValueError, match=r"The MADE gives 23 parameters per feature but a 4-bin spline needs 11\."):
        MaskedAutoregressiveRQS(made, SplineSettings(num_bins=4))
