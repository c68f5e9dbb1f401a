"""U-Net and context embedding: the paper's parameter count, circular padding along alpha only, shapes."""

import numpy as np
import tensorflow as tf

from calozoo.bijectors.unet import ContextEmbedding, UNet, embedding_num_params, pad_alpha_circular, unet_num_params


def _count(module):
    return sum(int(np.prod(v.shape)) for v in module.trainable_variables)


def test_paper_unet_has_540_154_parameters():
    """MODELS.md 6.2: hidden 32, 2 identity + 8 context channels in, 2 x 29 out, down-sampling (3,5), (3,5)."""
    assert unet_num_params(10, 58, 32, ((3, 5), (3, 5))) == 540_154
    assert _count(UNet(10, 58, 32, ((3, 5), (3, 5)))) == 540_154


def test_analytic_counts_match_built_networks():
    assert _count(UNet(3, 29, 6, ((3, 2), (3, 4)))) == unet_num_params(3, 29, 6, ((3, 2), (3, 4)))
    assert _count(ContextEmbedding(7, 8, (2, 2))) == embedding_num_params(7, 8, (2, 2))


def test_padding_wraps_alpha_and_zero_pads_r():
    x = tf.reshape(tf.range(12, dtype=tf.float64), [1, 3, 4, 1])  # r = 3, alpha = 4
    padded = pad_alpha_circular(x, 1, 1).numpy()[0, ..., 0]
    assert padded.shape == (5, 6)
    np.testing.assert_array_equal(padded[0], 0.0)
    np.testing.assert_array_equal(padded[-1], 0.0)
    np.testing.assert_array_equal(padded[1:-1, 0], x.numpy()[0, :, -1, 0])  # wrapped from the last alpha
    np.testing.assert_array_equal(padded[1:-1, -1], x.numpy()[0, :, 0, 0])


def test_unet_is_equivariant_to_rolls_along_alpha():
    """Circular padding: rolling the input along alpha by a multiple of the total down-sampling rolls the output."""
    net = UNet(2, 5, 4, ((3, 2),), seed=1, dtype=tf.float64)
    output = net.decoders[-1][-1]
    output.kernel.assign(np.random.default_rng(0).normal(size=output.kernel.shape))
    x = np.random.default_rng(1).normal(size=(2, 9, 8, 2))
    y = net(x).numpy()
    assert y.shape == (2, 9, 8, 5)
    np.testing.assert_allclose(net(np.roll(x, 2, axis=2)).numpy(), np.roll(y, 2, axis=2), atol=1e-12)
    assert not np.allclose(net(np.roll(x, 1, axis=1)).numpy(), np.roll(y, 1, axis=1))  # r is not periodic


def test_context_embedding_squeezes_to_the_coupling_size():
    embedding = ContextEmbedding(7, 8, (2, 2), dtype=tf.float64)
    assert embedding(np.zeros((3, 18, 50, 7))).shape == (3, 9, 25, 8)
