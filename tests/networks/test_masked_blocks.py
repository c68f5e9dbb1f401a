"""Tests of calozoo.networks.masked_blocks: a masked dense layer kept in column blocks."""

import numpy as np
import pytest
import tensorflow as tf

from calozoo.networks.masked_blocks import MaskedBlockDense, column_prefixes


def prefix_mask(n_in, prefixes):
    return np.arange(n_in)[:, None] < np.asarray(prefixes)[None, :]


@pytest.mark.parametrize("groups", [1, 2, 3, 7, 50])
def test_blocks_equal_the_masked_product(groups):
    rng = np.random.default_rng(0)
    mask = prefix_mask(6, [0, 1, 1, 3, 4, 6, 6])  # a column without inputs: its block part is the bias
    kernel, bias, x = rng.normal(size=(6, 7)) * mask, rng.normal(size=7), rng.normal(size=(5, 6))
    layer = MaskedBlockDense(kernel, mask, bias, groups=groups)
    np.testing.assert_allclose(layer(tf.constant(x)).numpy(), x @ kernel + bias, rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(layer.dense_kernel().numpy(), kernel)
    np.testing.assert_array_equal(layer.dense_mask, mask)
    assert sum(int(np.prod(b.shape)) for b in layer.blocks) <= 6 * 7


def test_assigning_a_dense_kernel_checks_the_mask():
    mask = prefix_mask(3, [1, 2, 3])
    layer = MaskedBlockDense(np.zeros((3, 3)), mask, np.zeros(3), groups=3)
    layer.assign_dense_kernel(np.triu(np.ones((3, 3))))
    np.testing.assert_array_equal(layer.dense_kernel().numpy(), np.triu(np.ones((3, 3))))
    with pytest.raises(ValueError, match="where the mask has none"):
        layer.assign_dense_kernel(np.ones((3, 3)))


def test_a_mask_that_is_not_a_prefix_per_column_is_refused():
    with pytest.raises(ValueError, match="prefix"):
        column_prefixes(np.array([[0, 1], [1, 1]]))
