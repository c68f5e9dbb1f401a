"""Tests of calozoo.bijectors.rq_coupling and its conditioner calozoo.bijectors.residual_net."""

import numpy as np
import pytest

from calozoo.bijectors.residual_net import ResidualNet, residual_net_num_params
from calozoo.bijectors.rq_coupling import RQSCoupling, coupling_masks, rqs_coupling_num_params
from tests.bijectors.helpers import assert_bijective


def randomised(layer: RQSCoupling, seed: int = 0, scale: float = 0.3) -> RQSCoupling:
    """Moves every weight, so that the splines are far from the identity the initialisation gives."""
    rng = np.random.default_rng(seed)
    for variable in layer.trainable_variables:
        variable.assign(variable + rng.normal(scale=scale, size=variable.shape))
    return layer


def test_masks_alternate_like_nflows():
    identity, transformed = coupling_masks(5, 0)
    assert identity.tolist() == [0, 2, 4] and transformed.tolist() == [1, 3]
    identity, transformed = coupling_masks(5, 1)
    assert identity.tolist() == [1, 3] and transformed.tolist() == [0, 2, 4]


@pytest.mark.parametrize("parity", [0, 1])
def test_bijective_with_exact_log_det(parity):
    layer = randomised(RQSCoupling(features=5, parity=parity, context=2, hidden=16, num_blocks=2), seed=parity)
    rng = np.random.default_rng(7)
    x = rng.uniform(-1.3, 1.3, size=(6, 5))  # some points in the linear tails
    context = rng.normal(size=(6, 2))
    assert_bijective(layer, x, event_ndims=1, bijector_kwargs={"conditional_input": context}, rtol=1e-8)


def test_identity_features_pass_unchanged_and_the_others_move():
    layer = randomised(RQSCoupling(features=4, parity=0, context=1, hidden=8), seed=3)
    x = np.random.default_rng(1).uniform(-0.9, 0.9, size=(5, 4))
    z = layer.inverse(x, conditional_input=np.ones((5, 1))).numpy()
    np.testing.assert_array_equal(z[:, [0, 2]], x[:, [0, 2]])
    assert np.abs(z[:, [1, 3]] - x[:, [1, 3]]).max() > 1e-3


def test_the_context_changes_the_map():
    layer = randomised(RQSCoupling(features=4, parity=1, context=1, hidden=8), seed=4)
    x = np.random.default_rng(2).uniform(-0.9, 0.9, size=(3, 4))
    a = layer.inverse(x, conditional_input=np.zeros((3, 1))).numpy()
    b = layer.inverse(x, conditional_input=np.ones((3, 1))).numpy()
    assert np.abs(a - b).max() > 1e-4


def test_parameter_counts_match_the_built_layers():
    net = ResidualNet(inputs=18, outputs=17 * 23, hidden=64, context=6, num_blocks=3)
    built = sum(int(np.prod(v.shape)) for v in net.trainable_variables)
    # by hand: (18 + 6)·64 + 64 + 3·(2·(64² + 64) + 6·64 + 64) + 64·391 + 391
    assert built == residual_net_num_params(18, 391, 64, 6, 3) == 1600 + 26_304 + 25_415
    layer = RQSCoupling(features=35, parity=1, context=6, hidden=64, num_blocks=3)
    assert sum(int(np.prod(v.shape)) for v in layer.trainable_variables) == rqs_coupling_num_params(35, 1, 6, 64, 3, 8)


def test_unconditional_net_has_no_gates():
    assert residual_net_num_params(3, 4, 8, 0, 2) == 3 * 8 + 8 + 2 * (2 * (64 + 8)) + 8 * 4 + 4
    net = ResidualNet(3, 4, 8, context=0, num_blocks=2)
    assert sum(int(np.prod(v.shape)) for v in net.trainable_variables) == residual_net_num_params(3, 4, 8, 0, 2)


def test_a_conditional_net_needs_its_context():
    with pytest.raises(ValueError, match="pass `context`"):
        ResidualNet(3, 4, 8, context=2)(np.zeros((1, 3)))


def test_zuko_style_coupling_with_random_mask_and_mlp_conditioner():
    """CaloPointFlow's coupling: explicit (random) identity features, a ReLU MLP on [x_A, c], zuko's spline."""
    from calozoo.bijectors.rq_coupling import random_coupling_masks
    from calozoo.bijectors.rq_spline import SplineSettings

    identity, transformed = random_coupling_masks(6, 3, np.random.default_rng(0))
    assert len(identity) == 3 and sorted(identity.tolist() + transformed.tolist()) == list(range(6))
    spline = SplineSettings(8, 5.0, 0.0, 0.0, 0.0, parametrization="zuko")
    layer = randomised(RQSCoupling(6, 0, context=2, hidden=16, num_blocks=3, spline=spline, identity=identity,
                                   conditioner="mlp"), seed=4)
    built = int(sum(np.prod(v.shape) for v in layer.trainable_variables))
    assert built == rqs_coupling_num_params(6, 0, 2, 16, 3, 8, conditioner="mlp", n_identity=3)
    rng = np.random.default_rng(8)
    x = rng.uniform(-6.0, 6.0, size=(7, 6))
    assert_bijective(layer, x, event_ndims=1, bijector_kwargs={"conditional_input": rng.normal(size=(7, 2))},
                     rtol=1e-8)
    z = layer.inverse(x, conditional_input=np.ones((7, 2))).numpy()
    np.testing.assert_array_equal(z[:, identity], x[:, identity])
    with pytest.raises(ValueError, match="subset"):
        RQSCoupling(3, 0, context=0, hidden=4, identity=[0, 1, 2], conditioner="mlp")
