"""Tests of calozoo.networks.masked_mlp: zuko's mask derivation and the masked network's Jacobian structure."""

import numpy as np
import pytest
import tensorflow as tf

from calozoo.bijectors.zuko_made import autoregressive_adjacency
from calozoo.networks.masked_mlp import MaskedMLP, masked_mlp_masks, masked_mlp_num_params


def test_every_output_depends_only_on_its_adjacent_inputs():
    adjacency = autoregressive_adjacency(np.array([2, 0, 3, 1]), context=2, params_per_feature=3)
    net = MaskedMLP(adjacency, [16, 16], seed=3)
    x = tf.constant(np.random.default_rng(0).normal(size=(5, 6)))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = net(x)
    jacobian = tape.batch_jacobian(y, x).numpy()
    assert np.all(jacobian[:, ~adjacency] == 0.0)
    assert np.all(np.abs(jacobian[:, adjacency]).max(axis=0) > 0.0)  # every allowed path exists somewhere
    count = sum(int(np.prod(v.shape)) for v in net.trainable_variables)
    assert count == masked_mlp_num_params(6, [16, 16], 12)


def test_hidden_units_cycle_through_the_distinct_rows_of_the_adjacency():
    adjacency = autoregressive_adjacency(np.array([1, 0]), context=1, params_per_feature=2)
    first, second, last = masked_mlp_masks(adjacency, [4, 4])
    # the distinct rows, sorted: context only, then feature 1 (order 0) and the context
    assert first.astype(int).tolist() == [[0, 0, 0, 0], [0, 1, 0, 1], [1, 1, 1, 1]]
    assert second.astype(int).tolist() == [[1, 1, 1, 1], [0, 1, 0, 1], [1, 1, 1, 1], [0, 1, 0, 1]]
    assert last.astype(int).tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]]


def test_an_adjacency_without_connections_is_refused():
    with pytest.raises(ValueError, match="null Jacobian"):
        masked_mlp_masks(np.zeros((2, 3), bool), [4])
