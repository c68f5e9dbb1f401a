"""Per-layer operations on flattened showers: split, normalise to unit layer sums, rescale."""

import math
from collections.abc import Sequence

import tensorflow as tf

__all__ = ["split_layers", "layer_sums", "layer_normalize", "rescale_layers", "rescale_rows", "keep_filled_rows",
           "log_shares"]


def split_layers(voxels, layer_sizes: Sequence[int]):
    """The per-layer blocks of (N, V) voxels, a list of (N, size_k)."""
    return tf.split(voxels, list(layer_sizes), axis=-1)


def layer_sums(voxels, layer_sizes: Sequence[int]):
    """Energy per layer, (N, L)."""
    return tf.stack([tf.reduce_sum(block, axis=-1) for block in split_layers(voxels, layer_sizes)], axis=-1)


def layer_normalize(voxels, layer_sizes: Sequence[int], epsilon=1e-16):
    """Each layer divided by its own sum (+ epsilon), so every layer sums to one."""
    blocks = split_layers(voxels, layer_sizes)
    return tf.concat([b / (tf.reduce_sum(b, axis=-1, keepdims=True) + epsilon) for b in blocks], axis=-1)


def rescale_layers(shapes, layer_energies, layer_sizes: Sequence[int]):
    """Each layer of `shapes` normalised by the sum of its absolute values, times that layer's energy."""
    blocks = split_layers(shapes, layer_sizes)
    scaled = [
        b / tf.reduce_sum(tf.abs(b), axis=-1, keepdims=True) * layer_energies[:, k : k + 1]
        for k, b in enumerate(blocks)
    ]
    return tf.concat(scaled, axis=-1)


def rescale_rows(values, target, floor=0.0):
    """Rows of `values` (..., L) scaled to sum to `target` (..., 1); a row summing to `floor` or less becomes zeros
    (rather than being inflated from rounding residue).

        >>> rescale_rows(tf.constant([[1.0, 3.0], [0.0, 0.0]]), tf.constant([[8.0], [5.0]])).numpy().tolist()
        [[2.0, 6.0], [0.0, 0.0]]
    """
    total = tf.reduce_sum(values, axis=-1, keepdims=True)
    empty = total <= floor
    return tf.where(empty, tf.zeros_like(values), values * target / tf.where(empty, tf.ones_like(total), total))


def keep_filled_rows(kept, raw, energies, threshold):
    """Rows (..., L) after a cut, made to agree with their target energies (..., 1) about which rows are empty.

    A row whose energy is below the threshold becomes empty (none of its voxels could pass the cut); a row with
    energy whose voxels all fell below the cut (`kept` all zero) gets its largest voxel of `raw`, the values
    before the cut, back; every other row is `kept` as it is. Rescaled with `rescale_rows(result, target)`, every
    row the energy flow filled then carries its energy.

        >>> kept = tf.constant([[0.0, 0.0], [0.0, 3.0], [0.0, 2.0]])
        >>> raw = tf.constant([[0.1, 0.2], [0.1, 3.0], [0.1, 2.0]])
        >>> rows, target = keep_filled_rows(kept, raw, tf.constant([[5.0], [4.0], [0.5]]), 1.0)
        >>> rows.numpy().tolist(), target.numpy().tolist()
        ([[0.0, 1.0], [0.0, 3.0], [0.0, 2.0]], [[5.0], [4.0], [0.0]])

    Returns:
        (rows, target): the rows and the energies to rescale them to (zero below the threshold).
    """
    filled = tf.reduce_sum(kept, axis=-1, keepdims=True) > 0
    largest = tf.one_hot(tf.argmax(raw, axis=-1), tf.shape(raw)[-1], dtype=kept.dtype)
    target = tf.where(energies < threshold, tf.zeros_like(energies), energies)
    return tf.where(filled, kept, largest), target


def log_shares(values, floor, resolution=1e-4):
    """Each row's shares values / max(row sum, floor), compressed to log(1 + share / resolution) / log(1 + 1 /
    resolution): in [0, 1], exactly 0 where a value is 0, and a share of `resolution` at about a tenth of the
    range, so that a tail voxel still registers. No noise and no dequantisation: a condition, not a flow's input.

        >>> log_shares(tf.constant([[1.0, 0.0], [1e-4, 0.0]], tf.float64), 1.0).numpy().round(3).tolist()
        [[1.0, 0.0], [0.075, 0.0]]
    """
    total = tf.maximum(tf.reduce_sum(values, axis=-1, keepdims=True), floor)
    return tf.math.log1p(values / total / resolution) / math.log1p(1.0 / resolution)
