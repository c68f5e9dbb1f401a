"""The conditioner of CaloMan's coupling layers: nflows' ResidualNet, with its context gating and sizes."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from calozoo.networks.init import torch_linear

__all__ = ["ResidualNet", "residual_net_num_params"]


def residual_net_num_params(inputs: int, outputs: int, hidden: int, context: int, num_blocks: int) -> int:
    """Trainable parameters: (I+C)·H+H + n·(2(H²+H) + C·H+H) + H·O+O (no context terms when C = 0)."""
    block = 2 * (hidden * hidden + hidden) + (context * hidden + hidden if context else 0)
    return (inputs + context) * hidden + hidden + num_blocks * block + hidden * outputs + outputs


class ResidualNet(tf.Module):
    """h_0 = W_0 [x, c] + b_0; per block h += (W_2 relu(W_1 relu(h) + b_1) + b_2) · sigmoid(W_c c + b_c);
    out = W_f h + b_f. As nflows' ResidualNet (no batch norm, no dropout): the context enters the first layer
    and gates (GLU) every block's output; each block's last layer starts near zero (U(-1e-3, 1e-3)).

    Example:
        >>> net = ResidualNet(inputs=3, outputs=4, hidden=8, context=2, num_blocks=2, seed=0)
        >>> net(np.zeros((5, 3)), np.zeros((5, 2))).shape
        TensorShape([5, 4])
    """

    def __init__(self, inputs: int, outputs: int, hidden: int, context: int = 0, num_blocks: int = 2, seed: int = 0,
                 dtype=tf.float64, name: str | None = None):
        super().__init__(name=name or "residual_net")
        if min(inputs, outputs, hidden) < 1 or num_blocks < 0 or context < 0:
            raise ValueError(f"`inputs`, `outputs` and `hidden` must be >= 1 and `num_blocks`, `context` >= 0; got "
                             f"{inputs}, {outputs}, {hidden}, {num_blocks}, {context}.")
        self.inputs, self.outputs, self.hidden = inputs, outputs, hidden
        self.context, self.num_blocks = context, num_blocks
        self.dtype = tf.as_dtype(dtype)
        np_dtype = self.dtype.as_numpy_dtype
        rng = np.random.default_rng(seed)
        with self.name_scope:
            self.initial = torch_linear(rng, inputs + context, hidden, np_dtype, "initial")
            self.blocks = []
            for k in range(num_blocks):
                block = {"first": torch_linear(rng, hidden, hidden, np_dtype, f"block{k}_first"),
                         "second": torch_linear(rng, hidden, hidden, np_dtype, f"block{k}_second", bound=1e-3)}
                if context:
                    block["gate"] = torch_linear(rng, context, hidden, np_dtype, f"block{k}_gate")
                self.blocks.append(block)
            self.final = torch_linear(rng, hidden, outputs, np_dtype, "final")

    @staticmethod
    def _dense(x, layer):
        kernel, bias = layer
        return tf.matmul(x, kernel) + bias

    def __call__(self, x, context=None):
        """(N, outputs) from x (N, inputs) and context (N, context)."""
        x = tf.convert_to_tensor(x, self.dtype)
        if self.context:
            if context is None:
                raise ValueError(f"This ResidualNet is conditional ({self.context} context features); pass `context`.")
            context = tf.convert_to_tensor(context, self.dtype)
            x = tf.concat([x, context], axis=-1)
        h = self._dense(x, self.initial)
        for block in self.blocks:
            t = self._dense(tf.nn.relu(self._dense(tf.nn.relu(h), block["first"])), block["second"])
            if self.context:
                t = t * tf.sigmoid(self._dense(context, block["gate"]))
            h = h + t
        return self._dense(h, self.final)
