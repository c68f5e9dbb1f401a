"""MADE: the masked autoregressive network of nflows v0.14, with its exact masks, context path and sizes."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from calozoo.networks.init import torch_uniform

__all__ = ["MADE", "made_num_params", "hidden_degrees"]


def hidden_degrees(num_hidden_units: int, num_features: int) -> np.ndarray:
    """Degrees of a hidden layer: cycling 1 .. D-1 (nflows, `random_mask=False`)."""
    largest = max(1, num_features - 1)
    smallest = min(1, num_features - 1)
    return np.arange(num_hidden_units) % largest + smallest


def made_num_params(features: int, context: int, hidden: int, num_blocks: int, params_per_feature: int) -> int:
    """Trainable parameters of a MADE: D·H+H + C·H+H + n·(H²+H) + H·D·M + D·M."""
    size = features * hidden + hidden + num_blocks * (hidden * hidden + hidden)
    size += hidden * features * params_per_feature + features * params_per_feature
    if context:
        size += context * hidden + hidden
    return size


class MADE(tf.Module):
    """Masked autoencoder for distribution estimation, feature-major outputs, as nflows' MADE.

    h_0 = relu(W_in x + b_in + relu(W_c c + b_c)); h_k = dropout(relu(W_k h_{k-1} + b_k)), k = 1..n;
    out = W_out h_n + b_out, reshaped to (..., D, M). Output (i, m) depends only on x_{<i}.

    Masked weights are stored as exact zeros and kept zero by a variable constraint (the tf_keras
    optimizers apply it after each step), so the forward pass is plain matrix products.

    References:
        Germain et al., MADE, arXiv:1502.03509; Papamakarios et al., MAF, arXiv:1705.07057.

    Example:
        >>> made = MADE(features=3, context=1, hidden=8, params_per_feature=2, seed=0)
        >>> made(np.zeros((4, 3)), np.zeros((4, 1))).shape
        TensorShape([4, 3, 2])
    """

    def __init__(
        self,
        features: int,
        context: int,
        hidden: int,
        params_per_feature: int,
        num_blocks: int = 1,
        dropout: float = 0.0,
        seed: int = 0,
        dtype=tf.float64,
        name: str | None = None,
    ):
        super().__init__(name=name or "made")
        if features < 1 or hidden < 1 or params_per_feature < 1:
            raise ValueError(
                f"`features`, `hidden` and `params_per_feature` must be >= 1; got {features}, {hidden}, "
                f"{params_per_feature}."
            )
        self.features, self.context, self.hidden = features, context, hidden
        self.params_per_feature, self.num_blocks, self.dropout = params_per_feature, num_blocks, float(dropout)
        dtype = tf.as_dtype(dtype)
        np_dtype = dtype.as_numpy_dtype
        rng = np.random.default_rng(seed)
        input_degrees = np.arange(1, features + 1)
        degrees = hidden_degrees(hidden, features)
        with self.name_scope:
            self.in_kernel, self.in_bias = self._masked_dense(
                rng, input_degrees, degrees, strict=False, dtype=np_dtype, name="input"
            )
            self.hidden_kernels, self.hidden_biases = [], []
            for block in range(num_blocks):
                kernel, bias = self._masked_dense(rng, degrees, degrees, strict=False, dtype=np_dtype, name=f"h{block}")
                self.hidden_kernels.append(kernel)
                self.hidden_biases.append(bias)
            output_degrees = np.repeat(input_degrees, params_per_feature)  # feature-major
            self.out_kernel, self.out_bias = self._masked_dense(
                rng, degrees, output_degrees, strict=True, dtype=np_dtype, name="output"
            )
            if context:
                self.ctx_kernel = tf.Variable(torch_uniform(rng, context, (context, hidden), np_dtype),
                                              name="context_kernel")
                self.ctx_bias = tf.Variable(torch_uniform(rng, context, (hidden,), np_dtype), name="context_bias")

    @staticmethod
    def _masked_dense(rng, in_degrees, out_degrees, strict, dtype, name):
        """A kernel (in, out) whose masked entries are zero and stay zero, and its bias."""
        mask = (out_degrees[None, :] > in_degrees[:, None]) if strict else (out_degrees[None, :] >= in_degrees[:, None])
        mask = mask.astype(dtype)
        fan_in = len(in_degrees)
        kernel_init = torch_uniform(rng, fan_in, mask.shape, dtype) * mask
        mask_constant = tf.constant(mask)
        kernel = tf.Variable(kernel_init, name=f"{name}_kernel", constraint=lambda w: w * mask_constant)
        kernel.mask = mask_constant  # kept for the structural tests
        bias = tf.Variable(torch_uniform(rng, fan_in, (mask.shape[1],), dtype), name=f"{name}_bias")
        return kernel, bias

    def first_layer_context(self, context):
        """The part of the first pre-activation that does not depend on x: b_in + relu(W_c c + b_c)."""
        if not self.context:
            return self.in_bias
        if context is None:
            raise ValueError(f"This MADE is conditional ({self.context} context features); pass `context`.")
        return self.in_bias + tf.nn.relu(tf.matmul(context, self.ctx_kernel) + self.ctx_bias)

    def _trunk(self, pre_activation, training):
        h = tf.nn.relu(pre_activation)
        for kernel, bias in zip(self.hidden_kernels, self.hidden_biases):
            h = tf.nn.relu(tf.matmul(h, kernel) + bias)
            if training and self.dropout > 0:
                h = tf.nn.dropout(h, rate=self.dropout)
        return h

    def __call__(self, x, context=None, training=False):
        """Autoregressive parameters, shape (..., D, M)."""
        x = tf.convert_to_tensor(x, dtype=self.in_kernel.dtype)
        if context is not None:
            context = tf.convert_to_tensor(context, dtype=self.in_kernel.dtype)
        pre = tf.matmul(x, self.in_kernel) + self.first_layer_context(context)
        out = tf.matmul(self._trunk(pre, training), self.out_kernel) + self.out_bias
        return tf.reshape(out, tf.concat([tf.shape(out)[:-1], [self.features, self.params_per_feature]], axis=0))

    def solve(self, targets, context, elementwise, training=False):
        """Solves y_i = elementwise(x_i, params_i(y_{<i})) for y, one feature at a time (D sequential steps).

        The first layer is updated incrementally (rank one per step) and only the output columns of the
        current feature are computed, so a step costs about one hidden-layer product.

        The log-det is summed from each step's elementwise log|dy_i/dx_i|, evaluated at the known x_i with the
        parameters of the solved y_{<i} (what nflows' last pass returns). Recomputing it from the solved y as
        minus the other direction's value is not the same number in floating point: where the slope is tiny the
        solved y has too few digits left in its bin, and the log-det is off by up to 1e-3.

        Args:
            targets: x, shape (B, D).
            context: conditions, shape (B, C) or None.
            elementwise: fn(x_i (B,), params_i (B, M)) -> (y_i (B,), log|dy_i/dx_i| (B,)).
        Returns:
            (y of shape (B, D), log|dy/dx| of shape (B,)).
        """
        targets = tf.convert_to_tensor(targets, dtype=self.in_kernel.dtype)
        if context is not None:
            context = tf.convert_to_tensor(context, dtype=self.in_kernel.dtype)
        out_kernel = tf.transpose(tf.reshape(self.out_kernel, [self.hidden, self.features, self.params_per_feature]),
                                  [1, 0, 2])
        out_bias = tf.reshape(self.out_bias, [self.features, self.params_per_feature])
        batch = tf.shape(targets)[0]
        pre = tf.zeros([batch, self.hidden], targets.dtype) + self.first_layer_context(context)
        outputs = tf.TensorArray(targets.dtype, size=self.features)
        logdets = tf.TensorArray(targets.dtype, size=self.features)
        targets_by_feature = tf.transpose(targets)

        def step(i, pre, outputs, logdets):
            params = tf.matmul(self._trunk(pre, training), out_kernel[i]) + out_bias[i]
            y_i, logdet_i = elementwise(targets_by_feature[i], params)
            pre = pre + y_i[:, None] * self.in_kernel[i][None, :]
            return i + 1, pre, outputs.write(i, y_i), logdets.write(i, logdet_i)

        _, _, outputs, logdets = tf.while_loop(
            lambda i, *_: i < self.features, step, (tf.constant(0), pre, outputs, logdets), parallel_iterations=1,
            maximum_iterations=self.features,  # a static trip count lets XLA compile the loop under a GradientTape
        )
        return tf.transpose(outputs.stack()), tf.reduce_sum(logdets.stack(), axis=0)
