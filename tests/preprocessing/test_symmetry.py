"""Tests of calozoo.preprocessing.symmetry: alpha rotations and mirrors of DS2/DS3 layers."""

import numpy as np
import tensorflow as tf

from calozoo.preprocessing.symmetry import (
    alpha_symmetry_indices,
    apply_alpha_symmetry,
    apply_alpha_symmetry_images,
    rotate_showers_alpha,
)

N_ALPHA, N_R = 16, 9


def _layers(n, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, N_ALPHA * N_R))


def test_indices_are_rotations_or_mirrors_and_cover_all_symmetries():
    indices = alpha_symmetry_indices(4000, N_ALPHA, tf.constant([3, 4])).numpy()
    seen = set()
    for row in indices:
        assert sorted(row) == list(range(N_ALPHA)), "not a permutation of the alpha bins"
        step = (row[1] - row[0]) % N_ALPHA
        assert step in (1, N_ALPHA - 1), "neighbouring bins must stay neighbours"
        np.testing.assert_array_equal(row, (row[0] + (1 if step == 1 else -1) * np.arange(N_ALPHA)) % N_ALPHA)
        seen.add((int(row[0]), int(step)))
    assert len(seen) == 2 * N_ALPHA, "every rotation, mirrored and not, is drawn"


def test_without_mirror_only_rotations():
    indices = alpha_symmetry_indices(500, N_ALPHA, tf.constant([1, 2]), mirror=False).numpy()
    assert np.all((indices[:, 1] - indices[:, 0]) % N_ALPHA == 1)


def test_apply_moves_whole_radial_rows_and_keeps_energy():
    layers = _layers(64)
    indices = alpha_symmetry_indices(64, N_ALPHA, tf.constant([5, 6]))
    moved = apply_alpha_symmetry(tf.constant(layers), indices, N_R).numpy()
    blocks, moved_blocks = layers.reshape(64, N_ALPHA, N_R), moved.reshape(64, N_ALPHA, N_R)
    for row in range(64):
        np.testing.assert_array_equal(moved_blocks[row], blocks[row][indices.numpy()[row]])
    np.testing.assert_allclose(moved.sum(-1), layers.sum(-1))
    np.testing.assert_allclose(moved_blocks.sum(1), blocks.sum(1))  # the radial profile is untouched


def test_the_same_indices_transform_two_layers_alike_and_the_same_seed_repeats():
    a, b = _layers(8, 1), _layers(8, 2)
    indices = alpha_symmetry_indices(8, N_ALPHA, tf.constant([7, 7]))
    np.testing.assert_array_equal(indices.numpy(), alpha_symmetry_indices(8, N_ALPHA, tf.constant([7, 7])).numpy())
    moved_a = apply_alpha_symmetry(tf.constant(a), indices, N_R).numpy()
    moved_b = apply_alpha_symmetry(tf.constant(b), indices, N_R).numpy()
    order = indices.numpy()
    for row in range(8):
        np.testing.assert_array_equal(moved_a[row].reshape(N_ALPHA, N_R), a[row].reshape(N_ALPHA, N_R)[order[row]])
        np.testing.assert_array_equal(moved_b[row].reshape(N_ALPHA, N_R), b[row].reshape(N_ALPHA, N_R)[order[row]])


def test_whole_showers_rotate_every_layer_alike():
    showers = np.random.default_rng(4).uniform(size=(5, 3 * N_ALPHA * N_R))
    rotated = rotate_showers_alpha(tf.constant(showers), 3, N_ALPHA, N_R, tf.constant([2, 3])).numpy()
    indices = alpha_symmetry_indices(5, N_ALPHA, tf.constant([2, 3])).numpy()
    for row in range(5):
        blocks = showers[row].reshape(3, N_ALPHA, N_R)
        np.testing.assert_array_equal(rotated[row].reshape(3, N_ALPHA, N_R), blocks[:, indices[row]])


def test_images_with_alpha_last_move_like_the_flat_layers():
    """(N, P, r, alpha) windows: each row's P layers transformed alike, as the alpha-major flat layers would be."""
    windows = np.random.default_rng(6).uniform(size=(7, 3, N_R, N_ALPHA))
    indices = alpha_symmetry_indices(7, N_ALPHA, tf.constant([8, 9]))
    moved = apply_alpha_symmetry_images(tf.constant(windows), indices).numpy()
    for p in range(3):
        flat = np.transpose(windows[:, p], [0, 2, 1]).reshape(7, N_ALPHA * N_R)  # alpha-major
        expected = apply_alpha_symmetry(tf.constant(flat), indices, N_R).numpy().reshape(7, N_ALPHA, N_R)
        np.testing.assert_array_equal(moved[:, p], np.transpose(expected, [0, 2, 1]))
