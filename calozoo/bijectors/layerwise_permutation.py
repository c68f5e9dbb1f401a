"""Fixed permutations of the features, optionally acting inside each calorimeter layer only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = ["reverse_within_layers", "random_within_layers", "alternating_permutations", "FixedPermutation"]


def _layer_offsets(layer_sizes: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(layer_sizes)]).astype(np.int64)


def reverse_within_layers(layer_sizes: Sequence[int]) -> np.ndarray:
    """Reverses the order inside each layer; layers keep their place (no feature crosses a layer)."""
    offsets = _layer_offsets(layer_sizes)
    return np.concatenate([np.arange(hi - 1, lo - 1, -1) for lo, hi in zip(offsets[:-1], offsets[1:])])


def random_within_layers(layer_sizes: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """A random permutation inside each layer; one layer spanning all features gives a global permutation."""
    offsets = _layer_offsets(layer_sizes)
    return np.concatenate([lo + rng.permutation(hi - lo) for lo, hi in zip(offsets[:-1], offsets[1:])])


def alternating_permutations(layer_sizes: Sequence[int], num_blocks: int, seed: int) -> list[np.ndarray]:
    """The permutations between the blocks of a CaloFlow-family flow (nflows order, one after each block).

    After even blocks the order is reversed inside each layer, after odd blocks shuffled inside each
    layer; the permutation after the last block is dropped, which leaves `num_blocks - 1`. With
    `layer_sizes=[features]` (one "layer" spanning all features) these are iCaloFlow's global
    ReversePermutation / RandomPermutation; with the calorimeter layers, CaloFlow DS1's.
    """
    rng = np.random.default_rng(seed)
    return [reverse_within_layers(layer_sizes) if k % 2 == 0 else random_within_layers(layer_sizes, rng)
            for k in range(num_blocks - 1)]


class FixedPermutation(tf.Module):
    """A permutation stored as non-trainable weights, so that it is saved with the model.

    Convention (nflows): towards the base, `to_base(x) = x[..., perm]`; `bijector` is the TFP
    bijector in the base -> data direction.
    """

    def __init__(self, permutation, name: str | None = None):
        super().__init__(name=name or "fixed_permutation")
        permutation = np.asarray(permutation, dtype=np.int64)
        if sorted(permutation.tolist()) != list(range(len(permutation))):
            raise ValueError(f"`permutation` must contain 0..{len(permutation) - 1} once each.")
        with self.name_scope:
            self.permutation = tf.Variable(permutation, trainable=False, name="permutation")
            self.inverse_permutation = tf.Variable(np.argsort(permutation), trainable=False, name="inverse")
        self.bijector = tfb.Permute(self.inverse_permutation, name=self.name)

    def to_base(self, x):
        return tf.gather(x, self.permutation, axis=-1)

    def to_data(self, z):
        return tf.gather(z, self.inverse_permutation, axis=-1)
