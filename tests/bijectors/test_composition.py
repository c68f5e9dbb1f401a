"""Tests of calozoo.bijectors.composition: the one place a flow's steps are ordered and run."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from calozoo.bijectors.composition import Composition, Step
from calozoo.bijectors.conv_flow import ConvLayerFlow
from tests.bijectors.helpers import assert_relative_close

tfb = tfp.bijectors


def affine_step(name: str, scale: float, shift: float, conditioned: bool = False, calls=None) -> Step:
    """x -> scale * x + shift towards the base (log-det log|scale| per feature); logs its keyword arguments."""

    def to_base(h, **kwargs):
        if calls is not None:
            calls.append((name, "to_base", sorted(kwargs)))
        features = tf.cast(tf.shape(h)[-1], h.dtype)
        return scale * h + shift, tf.fill(tf.shape(h)[:-1], features * np.log(abs(scale))), f"{name} reported"

    def to_data(h, **kwargs):
        if calls is not None:
            calls.append((name, "to_data", sorted(kwargs)))
        features = tf.cast(tf.shape(h)[-1], h.dtype)
        return (h - shift) / scale, tf.fill(tf.shape(h)[:-1], -features * np.log(abs(scale)))

    # the TFP bijector maps the base side to the data side, the inverse of the step's density direction
    shift_then_scale = tfb.Chain([tfb.Shift(tf.constant(shift, tf.float64)), tfb.Scale(tf.constant(scale, tf.float64))])
    bijector = tfb.Invert(shift_then_scale, name=name)
    return Step(name, to_base, to_data, conditioned, bijector)


def test_steps_run_in_the_listed_order_towards_the_base_and_reversed_towards_the_data():
    composition = Composition([affine_step("a", 2.0, 1.0), affine_step("b", -3.0, 0.5)])
    x = tf.constant([[1.0, -2.0]], tf.float64)
    towards_base = composition.to_base(x, record=True)
    np.testing.assert_allclose(towards_base.output.numpy(), -3.0 * (2.0 * x.numpy() + 1.0) + 0.5)
    np.testing.assert_allclose(towards_base.logdet.numpy(), [2 * np.log(2.0) + 2 * np.log(3.0)])
    assert [h.numpy().tolist() for h in towards_base.steps] == [[[1.0, -2.0]], [[3.0, -3.0]], [[-8.5, 9.5]]]
    assert towards_base.params == ["a reported", "b reported"]
    towards_data = composition.to_data(tf.identity(towards_base.output))
    assert_relative_close(towards_data.output, x, 1e-15, "x -> z -> x")
    assert_relative_close(towards_data.logdet, -towards_base.logdet, 1e-15, "log-dets")
    assert towards_data.steps == [] and towards_data.params == []


def test_keyword_arguments_reach_conditioned_steps_and_step_kwargs_one_step():
    calls = []
    composition = Composition([affine_step("plain", 2.0, 0.0, calls=calls),
                               affine_step("conditioned", 2.0, 0.0, conditioned=True, calls=calls)])
    composition.to_base(tf.ones((1, 1), tf.float64), step_kwargs={"plain": {"only_me": 1}}, context=3)
    composition.to_data(tf.ones((1, 1), tf.float64), context=3)
    assert calls == [("plain", "to_base", ["only_me"]), ("conditioned", "to_base", ["context"]),
                     ("conditioned", "to_data", ["context"]), ("plain", "to_data", [])]
    assert composition.conditioning(conditional_input=3) == {"conditioned": {"conditional_input": 3}}


def test_volume_preserving_steps_give_a_zero_log_det():
    composition = Composition([Step("swap", lambda h: (h[:, ::-1], None), lambda h: (h[:, ::-1], None))])
    result = composition.to_base(tf.constant([[1.0, 2.0], [3.0, 4.0]], tf.float64))
    np.testing.assert_array_equal(result.output.numpy(), [[2.0, 1.0], [4.0, 3.0]])
    np.testing.assert_array_equal(result.logdet.numpy(), [0.0, 0.0])


def test_the_tfp_chain_is_built_from_the_same_steps():
    composition = Composition([affine_step("a", 2.0, 1.0), affine_step("b", -3.0, 0.5)])
    z = tf.constant([[0.3, -1.2]], tf.float64)
    chain = composition.bijector("flow")
    assert chain.name == "flow"
    assert_relative_close(chain.forward(z), composition.to_data(z).output, 1e-15, "chain vs to_data")
    constant_logdet = chain.forward_log_det_jacobian(z, 1)  # TFP keeps a constant log-det unbroadcast
    assert_relative_close(tf.broadcast_to(constant_logdet, [1]), composition.to_data(z).logdet, 1e-12, "log-det")


def test_step_names_must_be_unique_and_every_step_needs_a_bijector_for_the_chain():
    with pytest.raises(ValueError, match="unique"):
        Composition([affine_step("a", 2.0, 0.0), affine_step("a", 3.0, 0.0)])
    bare = Composition([Step("bare", lambda h: (h, None), lambda h: (h, None))])
    with pytest.raises(ValueError, match="bare"):
        bare.bijector()


def test_the_conv_layer_flow_chain_agrees_with_its_production_passes():
    """ActNorm, image coupling and 1x1 convolution run forward in the density direction; their chain must
    still map base -> data like `to_data`, and the cached inverse weights must not change the result."""
    flow = ConvLayerFlow((6, 4), context_channels=2, squeeze=(2, 2), num_blocks=2, hidden=4,
                         down_factors=((3, 2),), embedding_channels=3, dtype=tf.float64)
    rng = np.random.default_rng(0)
    for variable in flow.trainable_variables:
        variable.assign(variable + rng.normal(scale=0.1, size=variable.shape))
    x, context = rng.normal(size=(3, 6, 4)), rng.normal(size=(3, 6, 4, 2))
    z, logdet = flow.to_base(x, context)
    x_back, inverse_logdet = flow.to_data(tf.identity(z), context)
    assert_relative_close(x_back, x, 1e-9, "x -> z -> x")
    assert_relative_close(inverse_logdet, -logdet, 1e-9, "log-dets")
    cached_back, _ = flow.to_data(tf.identity(z), context, flow.cached_weights())
    assert_relative_close(cached_back, x, 1e-9, "with cached inverse weights")
    chain = flow.composition.bijector()
    kwargs = flow.composition.conditioning(conditional_input=flow.embed(context))
    assert_relative_close(chain.forward(tf.identity(z), **kwargs), flow.squeeze.forward(x[..., None]), 1e-9,
                          "chain forward vs x")
    assert_relative_close(chain.inverse_log_det_jacobian(flow.squeeze.forward(x[..., None]), 3, **kwargs), logdet,
                          1e-9, "chain log-det vs to_base")
