"""Tests of calozoo.bijectors.coupling_flow: CaloMan's coupling-RQS + permutation + LU-linear flow."""

import numpy as np
import tensorflow as tf

from calozoo.bijectors.coupling_flow import CouplingRQSFlow
from tests.bijectors.helpers import assert_bijective, assert_relative_close


def randomised_flow(seed: int = 0, **kwargs) -> CouplingRQSFlow:
    flow = CouplingRQSFlow(**{"features": 5, "context": 2, "hidden": 12, "num_layers": 3, "num_blocks": 2, **kwargs})
    rng = np.random.default_rng(seed)
    for variable in flow.trainable_variables:
        variable.assign(variable + rng.normal(scale=0.2, size=variable.shape))
    return flow


def test_round_trip_and_log_dets_agree():
    flow = randomised_flow()
    rng = np.random.default_rng(1)
    x, context = rng.normal(scale=0.5, size=(8, 5)), rng.normal(size=(8, 2))
    z, logdet = flow.to_base(x, context)
    x_back, inverse_logdet = flow.to_data(tf.identity(z), context)
    assert_relative_close(x_back, x, 1e-9, "x -> z -> x")
    assert_relative_close(inverse_logdet, -logdet, 1e-9, "log|dx/dz| vs -log|dz/dx|")


def test_the_tfp_chain_is_the_same_flow_with_an_exact_log_det():
    flow = randomised_flow(seed=2)
    rng = np.random.default_rng(3)
    x, context = rng.normal(scale=0.5, size=(4, 5)), rng.normal(size=(4, 2))
    chain = flow.bijector
    z = assert_bijective(chain, x, event_ndims=1, bijector_kwargs=flow.bijector_kwargs(context), rtol=1e-8)
    np.testing.assert_allclose(z, flow.to_data(x, context)[0].numpy(), rtol=1e-12)


def test_log_prob_integrates_to_one_in_one_dimension_pairs():
    """A 2-d flow's density, summed on a fine grid, is 1 (the log-det is the right one, not just consistent)."""
    flow = randomised_flow(seed=4, features=2, context=1, num_layers=2)
    grid = np.linspace(-8.0, 8.0, 401)
    xx, yy = np.meshgrid(grid, grid)
    points = np.stack([xx.ravel(), yy.ravel()], axis=-1)
    density = np.exp(flow.log_prob(points, np.full((len(points), 1), 0.3)).numpy())
    total = density.sum() * (grid[1] - grid[0]) ** 2
    assert abs(total - 1.0) < 2e-3, total


def test_expected_count_matches_a_built_flow():
    flow = CouplingRQSFlow(features=35, context=6, hidden=64, num_layers=4, num_blocks=3)
    assert flow.num_params == CouplingRQSFlow.expected_num_params(35, 6, 64, 4, 3, 8)


def test_sampling_is_seeded_and_has_the_shape_of_the_context():
    flow = randomised_flow(seed=5)
    context = np.zeros((6, 2))
    seed = tf.constant([1, 2], tf.int32)
    a, b = flow.sample(context, seed).numpy(), flow.sample(context, seed).numpy()
    assert a.shape == (6, 5)
    np.testing.assert_array_equal(a, b)
