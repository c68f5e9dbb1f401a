"""Tests of calozoo.data.point_clouds: showers <-> point clouds, segment means over empty showers."""

import numpy as np
import pytest
import tensorflow as tf

from calozoo.data.geometry import load_geometry
from calozoo.data.point_clouds import (
    grid_shape,
    points_to_showers,
    segment_ids_from_counts,
    segment_mean,
    showers_to_points,
)
from calozoo.data.synthetic import synthesize_showers


def test_grid_shapes_of_datasets_2_and_3():
    assert grid_shape("2").sizes == (45, 16, 9)
    assert grid_shape("3").sizes == (45, 50, 18)
    assert grid_shape(load_geometry("3")).n_voxels == 40500
    with pytest.raises(ValueError, match="dataset '2' or '3'"):
        grid_shape("1-pions")


@pytest.mark.parametrize("dataset", ["2", "3"])
def test_round_trip_is_exact_and_coordinates_follow_the_voxel_order(dataset):
    grid = grid_shape(dataset)
    showers = synthesize_showers(dataset, [2000.0, 50000.0, 400000.0], seed=3)
    showers = np.concatenate([showers[:1], np.zeros_like(showers[:1]), showers[1:]])  # an empty shower inside
    cloud = showers_to_points(tf.constant(showers), grid)
    counts = cloud.counts.numpy()
    np.testing.assert_array_equal(counts, (showers > 0).sum(axis=1))
    assert counts[1] == 0
    np.testing.assert_array_equal(cloud.segment_ids.numpy(), segment_ids_from_counts(counts).numpy())
    z, alpha, r = cloud.coordinates.numpy().T
    shower_index = cloud.segment_ids.numpy()
    flat = z * grid.n_alpha * grid.n_r + alpha * grid.n_r + r
    np.testing.assert_array_equal(showers[shower_index, flat], cloud.energies.numpy())
    assert z.max() < grid.n_z and alpha.max() < grid.n_alpha and r.max() < grid.n_r
    back = points_to_showers(cloud.coordinates, cloud.energies, cloud.segment_ids, len(showers), grid).numpy()
    np.testing.assert_array_equal(back, showers)


def test_points_in_the_same_voxel_are_summed():
    grid = grid_shape("2")
    coordinates = tf.constant([[0, 1, 2], [0, 1, 2], [44, 15, 8]])
    showers = points_to_showers(coordinates, tf.constant([1.0, 2.5, 4.0]), tf.constant([1, 1, 0]), 2, grid).numpy()
    assert showers[1, 1 * 9 + 2] == 3.5 and showers[0, -1] == 4.0 and showers.sum() == 7.5


def test_segment_mean_of_an_empty_shower_is_zero():
    values = tf.constant([[1.0, 2.0], [3.0, 4.0], [10.0, 10.0]])
    means = segment_mean(values, tf.constant([0, 0, 2]), 3).numpy()
    np.testing.assert_array_equal(means, [[2.0, 3.0], [0.0, 0.0], [10.0, 10.0]])
    no_points = segment_mean(tf.zeros([0, 4]), tf.zeros([0], tf.int32), 2).numpy()
    np.testing.assert_array_equal(no_points, np.zeros((2, 4)))


def test_works_inside_a_tf_function_with_an_unknown_batch():
    grid = grid_shape("2")

    @tf.function(input_signature=[tf.TensorSpec([None, 6480], tf.float32)])
    def round_trip(showers):
        cloud = showers_to_points(showers, grid)
        return points_to_showers(cloud.coordinates, cloud.energies, cloud.segment_ids, tf.shape(showers)[0], grid)

    showers = synthesize_showers("2", [1e4, 3e4], seed=1)
    np.testing.assert_array_equal(round_trip(tf.constant(showers)).numpy(), showers)
