"""zuko's masked MLP (zuko 1.1.0, `zuko.nn.MaskedMLP`): a ReLU MLP whose masks follow from an adjacency matrix.

The masks are derived as zuko derives them, so that a zuko state_dict maps onto this network one to one:

- the rows of the adjacency A (outputs x inputs) are merged into its distinct rows U, sorted (False < True);
- U_j precedes U_i when every input of U_j is also an input of U_i;
- hidden layer 0: unit h takes the inputs of the h-th reachable row of U, cycling (h mod the number of rows);
- hidden layer l > 0: the reachable rows are those preceded by some unit of layer l - 1; unit h takes the h-th of
  them, cycling, and connects to the units of layer l - 1 whose row precedes its own;
- the output layer: output o connects to the units of the last hidden layer whose row precedes o's row of A.

Each layer keeps its whole kernel (masked entries included, as zuko and the papers count them) and multiplies by
its mask in every product.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from calozoo.networks.init import torch_uniform
from calozoo.networks.mlp import mlp_num_params

__all__ = ["masked_mlp_masks", "MaskedMLP", "masked_mlp_num_params"]


def masked_mlp_masks(adjacency: np.ndarray, hidden: Sequence[int]) -> list[np.ndarray]:
    """The masks (in, out) of every layer of zuko's MaskedMLP for `adjacency` (outputs, inputs), as in the module
    docstring. Raises ValueError where a layer would have no connection at all (zuko's "null Jacobian").

        >>> adjacency = np.array([[0, 0, 1], [1, 0, 1]], bool)  # output 0 sees input 2, output 1 inputs 0 and 2
        >>> [m.astype(int).tolist() for m in masked_mlp_masks(adjacency, [4])]
        [[[0, 1, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]], [[1, 1], [0, 1], [1, 1], [0, 1]]]
    """
    adjacency = np.asarray(adjacency, bool)
    rows, inverse = np.unique(adjacency, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    sizes = rows.sum(axis=1)
    precedence = (rows.astype(np.int64) @ rows.T.astype(np.int64)) == sizes[None, :]  # [i, j]: row j within row i
    masks, indices = [], None
    for layer, width in enumerate([*hidden, adjacency.shape[0]]):
        mask = rows if layer == 0 else precedence[:, indices]
        if not mask.any():
            raise ValueError("The adjacency matrix leads to a null Jacobian (a layer without connections).")
        if layer < len(hidden):
            reachable = np.flatnonzero(mask.any(axis=1))
            indices = reachable[np.arange(width) % len(reachable)]
            mask = mask[indices]
        else:
            mask = mask[inverse]
        masks.append(mask.T.copy())
    return masks


def masked_mlp_num_params(inputs: int, hidden: Sequence[int], outputs: int) -> int:
    """Weights (masked ones included) and biases of a MaskedMLP: those of the plain MLP of the same sizes."""
    return mlp_num_params(inputs, hidden, outputs)


class MaskedMLP(tf.Module):
    """x -> ReLU(x (W_0 * M_0) + b_0) -> ... -> x (W_n * M_n) + b_n with zuko's masks for `adjacency`.

    `kernels[l]` (in, out) and `biases[l]` are PyTorch's `weight^T` and `bias` of the zuko layer `2 l`, initialised
    as torch's Linear (U(-1/sqrt(in), 1/sqrt(in))).

    Example:
        >>> net = MaskedMLP(np.array([[0, 0, 1], [1, 0, 1]], bool), [4], seed=0)
        >>> net(np.ones((5, 3))).shape
        TensorShape([5, 2])
    """

    def __init__(self, adjacency: np.ndarray, hidden: Sequence[int], seed: int = 0, dtype=tf.float64,
                 name: str | None = None):
        super().__init__(name=name or "masked_mlp")
        hidden = [int(h) for h in hidden]
        if not hidden or min(hidden) < 1:
            raise ValueError(f"`hidden` must be a non-empty list of sizes >= 1; got {hidden}.")
        masks = masked_mlp_masks(adjacency, hidden)
        np_dtype = tf.as_dtype(dtype).as_numpy_dtype
        rng = np.random.default_rng(seed)
        self.masks = [tf.constant(mask.astype(np_dtype)) for mask in masks]
        with self.name_scope:
            self.kernels, self.biases = [], []
            for k, mask in enumerate(masks):
                fan_in = mask.shape[0]
                self.kernels.append(tf.Variable(torch_uniform(rng, fan_in, mask.shape, np_dtype), name=f"kernel{k}"))
                self.biases.append(tf.Variable(torch_uniform(rng, fan_in, mask.shape[1:], np_dtype), name=f"bias{k}"))

    @property
    def dtype(self) -> tf.DType:
        return self.biases[-1].dtype

    def __call__(self, x):
        h = tf.convert_to_tensor(x, self.dtype)
        for k, (kernel, mask, bias) in enumerate(zip(self.kernels, self.masks, self.biases)):
            h = tf.matmul(h, kernel * mask) + bias
            if k < len(self.kernels) - 1:
                h = tf.nn.relu(h)
        return h
