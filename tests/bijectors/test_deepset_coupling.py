"""Tests of calozoo.bijectors.deepset_coupling: CaloPointFlow II's set-aware coupling."""

import numpy as np
import pytest
import tensorflow as tf

from calozoo.bijectors.deepset_coupling import DeepSetCoupling, deepset_coupling_num_params
from tests.bijectors.helpers import assert_bijective

SEGMENTS = np.array([0, 0, 0, 2, 2, 3, 3, 3, 3])  # set 1 is empty


def layer(identity, seed=0):
    built = DeepSetCoupling(3, identity, context=2, hidden=16, num_layers=2, set_hidden=[8, 8], set_width=8,
                            summary_hidden=[8], summary_dim=4, seed=seed, dtype=tf.float64)
    rng = np.random.default_rng(seed)
    for variable in built.trainable_variables:  # move away from the near-identity initialisation
        variable.assign(variable + rng.normal(scale=0.3, size=variable.shape))
    return built


def kwargs(rng):
    return {"conditional_input": rng.normal(size=(len(SEGMENTS), 2)), "segment_ids": SEGMENTS, "num_segments": 4}


@pytest.mark.parametrize("identity", [[0, 2], [1]])
def test_bijective_with_exact_per_point_log_det(identity):
    rng = np.random.default_rng(1)
    x = rng.uniform(-6.0, 6.0, size=(len(SEGMENTS), 3))  # bound 5: some points in the identity tails
    assert_bijective(layer(identity), x, event_ndims=1, bijector_kwargs=kwargs(rng), rtol=1e-8)


def test_summary_couples_points_of_a_set_through_identity_features_only():
    """Moving another point's identity feature changes this point's output; moving its transformed features does
    not; points of other sets never change. That is what keeps the layer invertible."""
    bijector = layer([0, 2], seed=2)
    rng = np.random.default_rng(3)
    condition = kwargs(rng)
    x = rng.normal(size=(len(SEGMENTS), 3))
    y = bijector.forward(x, **condition).numpy()
    moved_identity = x.copy()
    moved_identity[1, 0] += 0.5  # point 1 is in set 0 with points 0 and 2
    y_identity = bijector.forward(moved_identity, **condition).numpy()
    assert abs(y_identity[0, 1] - y[0, 1]) > 1e-6 and abs(y_identity[2, 1] - y[2, 1]) > 1e-6
    np.testing.assert_array_equal(y_identity[3:], y[3:])
    moved_transformed = x.copy()
    moved_transformed[1, 1] += 0.5
    y_transformed = bijector.forward(moved_transformed, **condition).numpy()
    np.testing.assert_array_equal(np.delete(y_transformed, 1, axis=0), np.delete(y, 1, axis=0))
    # the whole set is recovered from its image in one pass, although every point's map depends on the others
    np.testing.assert_allclose(bijector.inverse(y, **condition).numpy(), x, rtol=1e-10, atol=1e-12)


def test_parameter_count_matches_the_formula():
    built = layer([1])
    count = int(sum(np.prod(v.shape) for v in built.trainable_variables))
    assert count == deepset_coupling_num_params(3, 1, 2, 16, 2, 8, [8, 8], 8, [8], 4)
    with pytest.raises(ValueError, match="subset"):
        DeepSetCoupling(3, [], context=0, hidden=4)
