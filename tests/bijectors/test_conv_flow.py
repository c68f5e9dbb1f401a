"""ConvLayerFlow: round trip, log-det against autodiff (float64), data-dependent init, analytic parameter count."""

import numpy as np
import tensorflow as tf

from calozoo.bijectors.conv_flow import ConvLayerFlow

SMALL = dict(squeeze=(1, 2), num_blocks=2, hidden=4, down_factors=((3, 2),), embedding_channels=3)


def _flow(**overrides):
    return ConvLayerFlow((3, 4), context_channels=2, **{**SMALL, **overrides}, dtype=tf.float64)


def _perturb(flow, seed=0):
    rng = np.random.default_rng(seed)
    for coupling in flow.couplings:
        output = coupling.conditioner.decoders[-1][-1]
        output.kernel.assign(rng.normal(0.0, 0.2, size=output.kernel.shape))
    for conv in flow.convs:
        conv.lower_entries.assign(rng.normal(0.0, 0.5, size=conv.lower_entries.shape))


def test_round_trip_and_log_det_against_autodiff():
    flow = _flow()
    _perturb(flow)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(3, 3, 4)))
    context = tf.constant(rng.normal(size=(3, 3, 4, 2)))
    flow.initialize(x, context)
    z, logdet = flow.to_base(x, context)
    back, inverse_logdet = flow.to_data(tf.identity(z), context, flow.cached_weights())
    np.testing.assert_allclose(back.numpy(), x.numpy(), atol=1e-9)
    np.testing.assert_allclose(inverse_logdet.numpy(), -logdet.numpy(), rtol=1e-9)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        z = tf.reshape(flow.to_base(x, context)[0], [3, -1])
    jacobian = tape.batch_jacobian(z, x, experimental_use_pfor=False).numpy().reshape(3, 12, 12)
    del tape
    np.testing.assert_allclose(np.linalg.slogdet(jacobian)[1], logdet.numpy(), rtol=1e-8)


def test_initialisation_standardises_the_first_actnorm_input_and_flow_starts_near_identity():
    flow = _flow()
    x = np.random.default_rng(2).normal(3.0, 2.0, size=(64, 3, 4))
    flow.initialize(x, np.zeros((64, 3, 4, 2)))
    assert all(bool(norm.initialized) for norm in flow.actnorms)
    z, _ = flow.to_base(x, np.zeros((64, 3, 4, 2)))
    np.testing.assert_allclose(z.numpy().mean(axis=(0, 1, 2)), 0.0, atol=1e-8)
    np.testing.assert_allclose(z.numpy().std(axis=(0, 1, 2)), 1.0, rtol=1e-4)


def test_parameter_count_is_analytic():
    for overrides in ({}, {"embedding_channels": 0}):
        flow = _flow(**overrides)
        expected = ConvLayerFlow.expected_num_params((3, 4), 2, **{**SMALL, **overrides})
        assert flow.num_params == expected


def test_sample_shapes_and_seeds():
    flow = _flow()
    context = np.zeros((5, 3, 4, 2))
    a = flow.sample(context, tf.constant([1, 2])).numpy()
    assert a.shape == (5, 3, 4) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, flow.sample(context, tf.constant([1, 2])).numpy())
    assert not np.array_equal(a, flow.sample(context, tf.constant([1, 3])).numpy())
