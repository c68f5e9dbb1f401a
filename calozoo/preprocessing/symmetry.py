"""The azimuthal symmetry of DS2/DS3 showers as a training augmentation: whole-bin rotations and mirrors in alpha.

Electrons enter the DS2/DS3 cylinders along the axis, so a shower rotated by a whole number of alpha bins, or
mirrored in alpha, is as likely as the original (`calozoo.evaluation.symmetry` checks this on GEANT4 files).
Every training row can therefore stand for 2 * n_alpha showers: 32 on DS2, 100 on DS3.
"""

from __future__ import annotations

import tensorflow as tf

from calozoo import stateless

__all__ = ["alpha_symmetry_indices", "apply_alpha_symmetry", "apply_alpha_symmetry_images", "rotate_showers_alpha"]


def alpha_symmetry_indices(batch, n_alpha: int, seed, mirror: bool = True):
    """Per row, the alpha bin each output bin is read from: (shift ± alpha) mod n_alpha, (batch, n_alpha) int32.

    The shift is uniform over the n_alpha rotations; with `mirror` the sign is drawn with probability 1/2.
    """
    shift_seed, mirror_seed = tf.unstack(stateless.split(seed, 2))
    shift = stateless.uniform([batch, 1], shift_seed, 0, n_alpha, tf.int32)
    sign = tf.ones([batch, 1], tf.int32)
    if mirror:
        sign = 1 - 2 * stateless.uniform([batch, 1], mirror_seed, 0, 2, tf.int32)
    return tf.math.floormod(shift + sign * tf.range(n_alpha)[tf.newaxis], n_alpha)


def apply_alpha_symmetry(layers, indices, n_r: int):
    """`layers` (N, n_alpha * n_r), alpha-major, with row i's alpha bins read in the order `indices[i]`.

    Passing the same `indices` to several tensors (a layer and the layer before it) transforms them alike.
    """
    n_alpha = indices.shape[-1]
    blocks = tf.reshape(layers, [-1, n_alpha, n_r])
    return tf.reshape(tf.gather(blocks, indices, batch_dims=1), [-1, n_alpha * n_r])


def apply_alpha_symmetry_images(images, indices):
    """Images (N, ..., n_alpha) with alpha as the last axis, row i's alpha bins read in the order `indices[i]`
    ((N, n_alpha) from `alpha_symmetry_indices`): every image of a row (a window of layers) transformed alike."""
    return tf.gather(images, indices, axis=-1, batch_dims=1)


def rotate_showers_alpha(showers, n_layers: int, n_alpha: int, n_r: int, seed, mirror: bool = True):
    """Whole showers (N, n_layers * n_alpha * n_r) rotated (and mirrored) in alpha, every layer of a shower alike,
    by a random symmetry per shower drawn from `seed` (int[2])."""
    indices = alpha_symmetry_indices(tf.shape(showers)[0], n_alpha, seed, mirror)
    layers = apply_alpha_symmetry(tf.reshape(showers, [-1, n_alpha * n_r]), tf.repeat(indices, n_layers, axis=0), n_r)
    return tf.reshape(layers, tf.shape(showers))
