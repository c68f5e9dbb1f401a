"""A masked dense layer kept in column blocks, so that the structurally zero part of its kernel is never multiplied.

In a MADE whose units are ordered by degree, every output column connects to a prefix of the inputs (the inputs
whose degree the mask lets through). Cutting the columns into `groups` contiguous ranges and keeping, per range,
only the rows up to the longest prefix in it turns one product with a triangular kernel into `groups` dense
products over about (groups + 1) / (2 groups) of the entries.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["MaskedBlockDense", "column_prefixes"]


def column_prefixes(mask: np.ndarray) -> np.ndarray:
    """For each column of a 0/1 mask (in, out) the length of its prefix of ones; raises if a column is not a prefix."""
    mask = np.asarray(mask, bool)
    prefixes = mask.sum(axis=0)
    if not np.array_equal(mask, np.arange(mask.shape[0])[:, None] < prefixes[None, :]):
        raise ValueError("Every column of the mask must be a prefix of ones (order the units by degree first).")
    return prefixes


class MaskedBlockDense(tf.Module):
    """x (B, n_in) -> x @ (W * mask) + b, with W stored as one dense block per range of columns.

    The column blocks are `groups` equal ranges, or the ranges between the given `edges` (0 = e_0 < ... = n_out).
    Block g holds the rows [0, q_g) of its columns, q_g the longest mask prefix among them; entries of the block
    that the mask zeroes are stored as zeros and kept zero by a variable constraint (applied by the tf_keras
    optimizers after each step). With `groups=1` the single block is the whole kernel.

    Example:
        >>> mask = np.tril(np.ones((3, 3)), k=0).T  # column j connects to inputs 0..j
        >>> layer = MaskedBlockDense(np.ones((3, 3)) * mask, mask, np.zeros(3), groups=3)
        >>> layer(np.ones((1, 3))).numpy().tolist()
        [[1.0, 2.0, 3.0]]
    """

    def __init__(self, kernel: np.ndarray, mask: np.ndarray, bias: np.ndarray, groups: int = 1,
                 edges=None, name: str | None = None):
        super().__init__(name=name)
        kernel, mask = np.asarray(kernel), np.asarray(mask, bool)
        if kernel.shape != mask.shape or bias.shape != (kernel.shape[1],):
            raise ValueError(f"kernel {kernel.shape}, mask {mask.shape} and bias {bias.shape} do not fit together.")
        prefixes = column_prefixes(mask)
        self.n_in, self.n_out = kernel.shape
        if edges is None:
            edges = np.unique(np.linspace(0, self.n_out, max(1, min(groups, self.n_out)) + 1).round().astype(int))
        edges = np.asarray(edges, int)
        if edges[0] != 0 or edges[-1] != self.n_out or np.any(np.diff(edges) <= 0):
            raise ValueError(f"`edges` must rise strictly from 0 to {self.n_out}; got {edges.tolist()}.")
        self.ranges = [(int(a), int(e), int(prefixes[a:e].max())) for a, e in zip(edges[:-1], edges[1:])]
        dtype = kernel.dtype
        self.masks = [tf.constant(mask[:q, a:e].astype(dtype)) for a, e, q in self.ranges]
        with self.name_scope:
            self.blocks = [tf.Variable(kernel[:q, a:e] * mask[:q, a:e], name=f"block{g}",
                                       constraint=lambda w, m=block_mask: w * m)
                           for g, ((a, e, q), block_mask) in enumerate(zip(self.ranges, self.masks))]
            self.bias = tf.Variable(bias.astype(dtype), name="bias")

    @property
    def dense_mask(self) -> np.ndarray:
        """The full 0/1 mask (n_in, n_out)."""
        mask = np.zeros((self.n_in, self.n_out), self.bias.dtype.as_numpy_dtype)
        for (a, e, q), block_mask in zip(self.ranges, self.masks):
            mask[:q, a:e] = block_mask.numpy()
        return mask

    def product(self, x):
        """x @ (W * mask) without the bias, in x's dtype (the weights are cast to it where they differ)."""
        parts = []
        for (a, e, q), block in zip(self.ranges, self.blocks):
            if q == 0:
                parts.append(tf.zeros(tf.concat([tf.shape(x)[:-1], [e - a]], axis=0), x.dtype))
            else:
                parts.append(tf.matmul(x[..., :q], _as(block, x.dtype)))
        return parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)

    def __call__(self, x):
        return self.product(x) + _as(self.bias, x.dtype)

    def dense_kernel(self):
        """The full kernel (n_in, n_out) as a tensor, masked entries zero."""
        parts = [tf.pad(block, [[0, self.n_in - q], [0, 0]]) for (a, e, q), block in zip(self.ranges, self.blocks)]
        return parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)

    def assign_dense_kernel(self, kernel) -> None:
        """Sets the blocks from a full kernel (n_in, n_out); entries outside the blocks must be zero."""
        kernel = np.asarray(kernel)
        if kernel.shape != (self.n_in, self.n_out):
            raise ValueError(f"Expected a kernel of shape {(self.n_in, self.n_out)}; got {kernel.shape}.")
        for (a, e, q), block in zip(self.ranges, self.blocks):
            if np.any(kernel[q:, a:e]):
                raise ValueError("The kernel has weights where the mask has none.")
            block.assign(kernel[:q, a:e].astype(block.dtype.as_numpy_dtype))


def _as(variable, dtype):
    """The variable's value in `dtype` (a cast only where the dtypes differ, e.g. bfloat16 products)."""
    return variable if variable.dtype == dtype else tf.cast(variable, dtype)
