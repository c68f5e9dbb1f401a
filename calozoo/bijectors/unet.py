"""The conditioner networks of the convolutional L2LFlows: a U-Net and a context embedding, both with
circular padding along alpha (the image width) and zero padding along r (the height).

Images are channels-last (N, r, alpha, C). Layers are plain `tf.Module`s with PyTorch's default
initialisation (uniform +- 1/sqrt(fan_in)) drawn from a seeded NumPy generator, so parameter counts and
initial weights are reproducible.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from calozoo.networks.init import torch_uniform

__all__ = ["leaky_relu", "pad_alpha_circular", "Conv2D", "TransposedConv2D", "BatchNorm", "UNet", "ContextEmbedding",
           "unet_num_params", "embedding_num_params"]

LEAKY_SLOPE = 0.01  # PyTorch's LeakyReLU default


def leaky_relu(x):
    """x where x > 0, else `LEAKY_SLOPE` x, with the slope in x's dtype. (`tf.nn.leaky_relu` keeps its `alpha` as a
    float32 attribute, 0.0099999998: in float64 that is a relative error of 2e-8 on every negative value, which the
    reference fixtures measured; in float32 the two are the same product.)"""
    return tf.where(x > 0, x, x * tf.constant(LEAKY_SLOPE, x.dtype))


def pad_alpha_circular(x, pad_r: int, pad_alpha: int):
    """Pads images (N, r, alpha, C): `pad_alpha` columns wrapped around along alpha, `pad_r` rows of zeros along r."""
    if pad_alpha:
        x = tf.concat([x[:, :, -pad_alpha:], x, x[:, :, :pad_alpha]], axis=2)
    if pad_r:
        x = tf.pad(x, [[0, 0], [pad_r, pad_r], [0, 0], [0, 0]])
    return x


class Conv2D(tf.Module):
    """A 2-D convolution; `circular=True` pads (k-1)/2 circularly along alpha and with zeros along r ('same' size),
    else no padding; `stride` defaults to 1; `zero_init` starts kernel and bias at 0."""

    def __init__(self, in_channels, out_channels, kernel=(3, 3), stride=(1, 1), circular=True, zero_init=False,
                 rng=None, dtype=tf.float32, name=None):
        super().__init__(name=name)
        kernel, self.stride, self.circular = tuple(kernel), tuple(stride), circular
        self.pad = ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2) if circular else (0, 0)
        fan_in = in_channels * kernel[0] * kernel[1]
        shape = kernel + (in_channels, out_channels)
        rng = rng or np.random.default_rng(0)
        with self.name_scope:
            self.kernel = tf.Variable(np.zeros(shape, dtype.as_numpy_dtype) if zero_init
                                      else torch_uniform(rng, fan_in, shape, dtype), name="kernel")
            self.bias = tf.Variable(np.zeros(out_channels, dtype.as_numpy_dtype) if zero_init
                                    else torch_uniform(rng, fan_in, out_channels, dtype), name="bias")

    def __call__(self, x):
        x = pad_alpha_circular(x, *self.pad)
        return tf.nn.conv2d(x, self.kernel, (1,) + self.stride + (1,), "VALID") + self.bias


class TransposedConv2D(tf.Module):
    """A transposed convolution with kernel = stride (non-overlapping), the U-Net's up-sampling."""

    def __init__(self, in_channels, out_channels, factor, rng=None, dtype=tf.float32, name=None):
        super().__init__(name=name)
        self.factor, self.out_channels = tuple(factor), out_channels
        fan_in = out_channels * factor[0] * factor[1]  # PyTorch's fan-in of ConvTranspose2d weights
        rng = rng or np.random.default_rng(0)
        with self.name_scope:
            self.kernel = tf.Variable(torch_uniform(rng, fan_in, self.factor + (out_channels, in_channels), dtype),
                                      name="kernel")
            self.bias = tf.Variable(torch_uniform(rng, fan_in, out_channels, dtype), name="bias")

    def __call__(self, x):
        shape = tf.shape(x)
        output_shape = tf.stack([shape[0], shape[1] * self.factor[0], shape[2] * self.factor[1], self.out_channels])
        return tf.nn.conv2d_transpose(x, self.kernel, output_shape, (1,) + self.factor + (1,), "VALID") + self.bias


class BatchNorm(tf.Module):
    """Batch normalisation over (N, r, alpha) per channel; PyTorch's momentum 0.1 and eps 1e-5. With
    `training=True` it normalises by the batch and updates the moving statistics, else uses them."""

    def __init__(self, channels, momentum=0.1, epsilon=1e-5, dtype=tf.float32, name=None):
        super().__init__(name=name)
        self.momentum, self.epsilon = momentum, epsilon
        with self.name_scope:
            self.gamma = tf.Variable(tf.ones([channels], dtype), name="gamma")
            self.beta = tf.Variable(tf.zeros([channels], dtype), name="beta")
            self.moving_mean = tf.Variable(tf.zeros([channels], dtype), trainable=False, name="moving_mean")
            self.moving_variance = tf.Variable(tf.ones([channels], dtype), trainable=False, name="moving_variance")

    def __call__(self, x, training=False):
        if training:
            mean, variance = tf.nn.moments(x, axes=[0, 1, 2])
            self.moving_mean.assign_sub(self.momentum * (self.moving_mean - mean))
            self.moving_variance.assign_sub(self.momentum * (self.moving_variance - variance))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return tf.nn.batch_normalization(x, mean, variance, self.beta, self.gamma, self.epsilon)


def _conv3_count(cin, cout):
    return 9 * cin * cout + cout


def unet_num_params(in_channels: int, out_channels: int, hidden: int, down_factors) -> int:
    """Trainable parameters of `UNet` from its shapes (convolutions, transposed convolutions, BatchNorm)."""
    total, channels = 0, in_channels
    levels = len(down_factors)
    for level, (fh, fw) in enumerate(down_factors):
        width = hidden * 2**level
        total += _conv3_count(channels, width) + 2 * width + _conv3_count(width, width) + 2 * width
        total += fh * fw * width * 2 * width + 2 * width  # strided down-sampling
        channels = 2 * width
    for level in reversed(range(levels)):
        fh, fw = down_factors[level]
        width = hidden * 2**level
        total += fh * fw * 2 * width * width + width  # transposed up-sampling
        total += _conv3_count(2 * width, width) + 2 * width
        total += _conv3_count(width, out_channels) if level == 0 else _conv3_count(width, width) + 2 * width
    return total


def embedding_num_params(in_channels: int, channels: int, squeeze) -> int:
    """Trainable parameters of `ContextEmbedding`."""
    return (in_channels * channels + channels + 2 * _conv3_count(channels, channels)
            + squeeze[0] * squeeze[1] * channels * channels + channels)


class UNet(tf.Module):
    """The coupling conditioner of ConvL2LFlow (docs/models.md section 6.2), for a `hidden` width and
    down-sampling factors.

    Level l (width hidden 2^l): [conv3x3, BN, LeakyReLU] x 2, then a strided convolution (kernel = stride =
    `down_factors[l]`) to width 2 hidden 2^l. Back up: a transposed convolution to width hidden 2^l, the
    level's skip connection concatenated, [conv3x3, BN, LeakyReLU] x 2, except on level 0, whose second
    convolution is the output (`out_channels`, zero-initialised: the coupling starts as the identity).
    Every 3x3 convolution pads circularly along alpha and with zeros along r. DS3's (3, 5), (3, 5) take the
    squeezed 9 x 25 image to 3 x 5 and 1 x 1; hidden 32 with 10 inputs and 58 outputs has 540 154 parameters.

    `bottleneck_activation=True` applies a LeakyReLU to the output of the last strided convolution, before the
    first transposed convolution, as the reference's `UNet.forward` does; the default (none) is calozoo's original
    form and is kept for its trained models.
    """

    def __init__(self, in_channels, out_channels, hidden=32, down_factors=((3, 5), (3, 5)), seed=0,
                 dtype=tf.float32, name=None, bottleneck_activation: bool = False):
        super().__init__(name=name or "unet")
        self.bottleneck_activation = bool(bottleneck_activation)
        rng = np.random.default_rng(seed)
        self.down_factors = tuple(tuple(f) for f in down_factors)
        self.encoders, self.downs, self.ups, self.decoders = [], [], [], []
        with self.name_scope:
            channels = in_channels
            for level, factor in enumerate(self.down_factors):
                width = hidden * 2**level
                self.encoders.append(self._block(channels, width, width, rng, dtype, f"encoder{level}"))
                self.downs.append(Conv2D(width, 2 * width, factor, factor, circular=False, rng=rng, dtype=dtype,
                                         name=f"down{level}"))
                channels = 2 * width
            for level in reversed(range(len(self.down_factors))):
                width = hidden * 2**level
                self.ups.append(TransposedConv2D(2 * width, width, self.down_factors[level], rng=rng, dtype=dtype,
                                                 name=f"up{level}"))
                last = out_channels if level == 0 else width
                self.decoders.append(self._block(2 * width, width, last, rng, dtype, f"decoder{level}",
                                                 output=level == 0))

    @staticmethod
    def _block(cin, width, cout, rng, dtype, name, output=False):
        layers = [Conv2D(cin, width, rng=rng, dtype=dtype, name=f"{name}_conv0"),
                  BatchNorm(width, dtype=dtype, name=f"{name}_norm0")]
        if output:
            layers.append(Conv2D(width, cout, zero_init=True, dtype=dtype, name=f"{name}_output"))
        else:
            layers += [Conv2D(width, cout, rng=rng, dtype=dtype, name=f"{name}_conv1"),
                       BatchNorm(cout, dtype=dtype, name=f"{name}_norm1")]
        return layers

    @staticmethod
    def _run(block, x, training):
        for layer in block:
            if isinstance(layer, BatchNorm):
                x = leaky_relu(layer(x, training))
            else:
                x = layer(x)
        return x

    def __call__(self, x, training=False):
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = self._run(encoder, x, training)
            skips.append(x)
            x = down(x)
        if self.bottleneck_activation:
            x = leaky_relu(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = self._run(decoder, tf.concat([up(x), skip], axis=-1), training)
        return x


class ContextEmbedding(tf.Module):
    """Embeds the condition images (N, r, alpha, C_in) at full resolution into `channels` features at the
    squeezed resolution: conv1x1, LeakyReLU, circular conv3x3, LeakyReLU, strided conv (kernel = stride =
    the squeeze factors), LeakyReLU, circular conv3x3 (docs/models.md section 6.2)."""

    def __init__(self, in_channels, channels=8, squeeze=(2, 2), seed=0, dtype=tf.float32, name=None):
        super().__init__(name=name or "context_embedding")
        rng = np.random.default_rng(seed)
        with self.name_scope:
            self.layers = [Conv2D(in_channels, channels, (1, 1), circular=False, rng=rng, dtype=dtype, name="conv0"),
                           Conv2D(channels, channels, rng=rng, dtype=dtype, name="conv1"),
                           Conv2D(channels, channels, tuple(squeeze), tuple(squeeze), circular=False, rng=rng,
                                  dtype=dtype, name="down"),
                           Conv2D(channels, channels, rng=rng, dtype=dtype, name="conv2")]

    def __call__(self, context):
        x = context
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = leaky_relu(x)
        return x
