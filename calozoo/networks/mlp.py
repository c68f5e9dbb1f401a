"""Multilayer perceptrons of the CaloMan autoencoder: a plain MLP and the label-tower 'ParallelMLP'."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from calozoo.networks.init import torch_linear

__all__ = ["MLP", "ParallelMLP", "gelu", "mlp_num_params", "parallel_mlp_num_params"]


def mlp_num_params(inputs: int, hidden: Sequence[int], outputs: int) -> int:
    """Weights and biases of Linear layers inputs -> hidden[0] -> ... -> outputs."""
    sizes = [inputs, *hidden, outputs]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def parallel_mlp_num_params(inputs: int, labels: int, hidden: Sequence[int], outputs: int) -> int:
    """A label tower labels -> inputs -> hidden..., plus an x tower whose every layer reads [x, tower output]."""
    tower = mlp_num_params(labels, [inputs, *hidden][:-1], [inputs, *hidden][-1])
    x_sizes = [inputs, *hidden]
    x_tower = sum(2 * a * b + b for a, b in zip(x_sizes[:-1], x_sizes[1:])) + 2 * hidden[-1] * outputs + outputs
    return tower + x_tower


def _check_hidden(hidden: Sequence[int]) -> list[int]:
    hidden = [int(h) for h in hidden]
    if not hidden or min(hidden) < 1:
        raise ValueError(f"`hidden` must be a non-empty list of sizes >= 1; got {hidden}.")
    return hidden


def gelu(x):
    """The exact GELU, x Phi(x) = x erfc(-x / sqrt(2)) / 2: `tf.nn.gelu(x, approximate=False)` with 1 / sqrt(2) in
    the dtype of x. TensorFlow rounds that constant to float32 first, which in float64 moves the result by up to
    5e-9 (absolute) from PyTorch's GELU; in float32 the two are the same operations on the same values.

        >>> float(gelu(tf.constant(1.0, tf.float64)))  # 0.5 * erfc(-1 / sqrt(2))
        0.841344746068543
    """
    x = tf.convert_to_tensor(x)
    return 0.5 * x * tf.math.erfc(-x * tf.constant(np.sqrt(0.5), x.dtype))


_ACTIVATIONS = {"relu": tf.nn.relu, "gelu": gelu}


class MLP(tf.Module):
    """MLP: Linear -> activation (ReLU, or `activation="gelu"`) for every hidden size, then a final Linear.

    Example:
        >>> MLP(3, [8, 8], 2)(np.zeros((4, 3))).shape
        TensorShape([4, 2])
    """

    def __init__(self, inputs: int, hidden: Sequence[int], outputs: int, seed: int = 0, dtype=tf.float32,
                 name: str | None = None, activation: str = "relu"):
        super().__init__(name=name or "mlp")
        hidden = _check_hidden(hidden)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"`activation` must be one of {sorted(_ACTIVATIONS)}; got {activation!r}.")
        self.activation = activation
        self.dtype = tf.as_dtype(dtype)
        rng = np.random.default_rng(seed)
        sizes = [inputs, *hidden, outputs]
        with self.name_scope:
            self.layers = [torch_linear(rng, a, b, self.dtype.as_numpy_dtype, f"dense{k}")
                           for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]

    def __call__(self, x, labels=None):
        """(N, outputs); `labels` is ignored (the unconditional network)."""
        h = tf.convert_to_tensor(x, self.dtype)
        for k, (kernel, bias) in enumerate(self.layers):
            h = tf.matmul(h, kernel) + bias
            if k < len(self.layers) - 1:
                h = _ACTIVATIONS[self.activation](h)
        return h


class ParallelMLP(tf.Module):
    """A conditional MLP with a parallel label tower, as CaloMan's ParallelMLP.

    The tower maps y -> relu(Linear) of size `inputs`, then of every hidden size. Layer k of the x tower reads
    [h_{k-1}, t_k] (twice its input width), and the last layer is linear:
        t_0 = relu(A_0 y),  h_1 = relu(B_1 [x, t_0]),  t_1 = relu(A_1 t_0),  h_2 = relu(B_2 [h_1, t_1]), ...
        out = B_out [h_n, t_n].

    Example:
        >>> ParallelMLP(5, 2, [8, 8], 3)(np.zeros((4, 5)), np.zeros((4, 2))).shape
        TensorShape([4, 3])
    """

    def __init__(self, inputs: int, labels: int, hidden: Sequence[int], outputs: int, seed: int = 0,
                 dtype=tf.float32, name: str | None = None):
        super().__init__(name=name or "parallel_mlp")
        hidden = _check_hidden(hidden)
        if labels < 1:
            raise ValueError(f"`labels` must be >= 1 for a ParallelMLP; got {labels} (use MLP without labels).")
        self.dtype = tf.as_dtype(dtype)
        np_dtype = self.dtype.as_numpy_dtype
        rng = np.random.default_rng(seed)
        tower_sizes = [labels, inputs, *hidden]
        x_sizes = [inputs, *hidden]
        with self.name_scope:
            self.label_layers = [torch_linear(rng, a, b, np_dtype, f"label{k}")
                                 for k, (a, b) in enumerate(zip(tower_sizes[:-1], tower_sizes[1:]))]
            self.x_layers = [torch_linear(rng, 2 * a, b, np_dtype, f"x{k}")
                             for k, (a, b) in enumerate(zip(x_sizes[:-1], x_sizes[1:]))]
            self.x_layers.append(torch_linear(rng, 2 * hidden[-1], outputs, np_dtype, "output"))

    def __call__(self, x, labels):
        """(N, outputs) from x (N, inputs) and labels (N, labels)."""
        h = tf.convert_to_tensor(x, self.dtype)
        t = tf.convert_to_tensor(labels, self.dtype)
        for k, ((a_kernel, a_bias), (b_kernel, b_bias)) in enumerate(zip(self.label_layers, self.x_layers)):
            t = tf.nn.relu(tf.matmul(t, a_kernel) + a_bias)
            h = tf.matmul(tf.concat([h, t], axis=-1), b_kernel) + b_bias
            if k < len(self.x_layers) - 1:
                h = tf.nn.relu(h)
        return h
