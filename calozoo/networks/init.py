"""PyTorch's default initialisation of Linear and Conv layers, drawn from a seeded NumPy generator, so that a model
built with a seed starts where the reference code's layers would (up to the generator) and parameter counts match."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["torch_uniform", "torch_linear"]


def torch_uniform(rng: np.random.Generator, fan_in: int, shape, dtype, bound: float | None = None) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) of `shape` (PyTorch's nn.Linear / nn.Conv default), or U(-bound, bound).

        >>> values = torch_uniform(np.random.default_rng(0), 4, (3, 2), np.float64)
        >>> values.shape, bool(np.all(np.abs(values) <= 0.5))
        ((3, 2), True)
    """
    bound = 1.0 / np.sqrt(fan_in) if bound is None else bound
    return rng.uniform(-bound, bound, size=shape).astype(np.dtype(getattr(dtype, "as_numpy_dtype", dtype)))


def torch_linear(rng: np.random.Generator, fan_in: int, fan_out: int, dtype, name: str,
                 bound: float | None = None) -> tuple[tf.Variable, tf.Variable]:
    """A kernel (fan_in, fan_out) and a bias, drawn in that order by `torch_uniform`, as variables
    `{name}_kernel` and `{name}_bias`."""
    kernel = tf.Variable(torch_uniform(rng, fan_in, (fan_in, fan_out), dtype, bound), name=f"{name}_kernel")
    bias = tf.Variable(torch_uniform(rng, fan_in, (fan_out,), dtype, bound), name=f"{name}_bias")
    return kernel, bias
