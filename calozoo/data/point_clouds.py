"""Showers <-> point clouds for the polar CaloChallenge geometries (datasets 2 and 3), in TensorFlow ops.

A shower becomes the set of its hit voxels: one point per voxel with energy > 0, with integer coordinates
(z = layer, alpha = angular bin, r = radial bin) and its energy. A batch of showers is one flat points tensor with
per-point shower ids (segment ids) and per-shower counts, so every per-shower operation is a segment op and no
Python loop runs over showers. Showers without hits give no points; `segment_mean` over them is 0, not NaN.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from calozoo.data.geometry import Geometry, load_geometry

__all__ = ["GridShape", "PointCloud", "grid_shape", "showers_to_points", "points_to_showers", "segment_mean",
           "segment_ids_from_counts"]


@dataclasses.dataclass(frozen=True)
class GridShape:
    """The (z, alpha, r) grid of a geometry whose layers all have the same polar binning (DS2, DS3).

    The flat voxel index is z * n_alpha * n_r + alpha * n_r + r (layer slowest, radius fastest).
    """

    n_z: int
    n_alpha: int
    n_r: int

    @property
    def n_voxels(self) -> int:
        return self.n_z * self.n_alpha * self.n_r

    @property
    def sizes(self) -> tuple[int, int, int]:
        return (self.n_z, self.n_alpha, self.n_r)


@dataclasses.dataclass
class PointCloud:
    """A batch of showers as points.

    Attributes:
        coordinates: (P, 3) int32 (z, alpha, r) of every hit.
        energies: (P,) energy of every hit (the showers' dtype).
        segment_ids: (P,) int32 shower index of every point, non-decreasing.
        counts: (N,) int32 hits per shower.
    """

    coordinates: tf.Tensor
    energies: tf.Tensor
    segment_ids: tf.Tensor
    counts: tf.Tensor


def grid_shape(geometry: Geometry | str) -> GridShape:
    """The (z, alpha, r) grid of `geometry` (a Geometry or a dataset name such as '2').

    Raises:
        ValueError: a geometry whose layers differ in binning (dataset 1, CaloGAN) has no regular grid.
    """
    geometry = load_geometry(geometry) if isinstance(geometry, str) else geometry
    shapes = {(getattr(layer, "n_alpha", None), getattr(layer, "n_r", None)) for layer in geometry.layers}
    if len(shapes) != 1 or None in next(iter(shapes)):
        raise ValueError(f"Point clouds need every layer binned alike in (alpha, r); geometry '{geometry.name}' is not "
                         "(use dataset '2' or '3').")
    n_alpha, n_r = next(iter(shapes))
    return GridShape(len(geometry.layers), int(n_alpha), int(n_r))


def segment_ids_from_counts(counts) -> tf.Tensor:
    """(sum(counts),) int32: i repeated counts[i] times."""
    counts = tf.cast(counts, tf.int32)
    return tf.repeat(tf.range(tf.shape(counts)[0], dtype=tf.int32), counts)


def showers_to_points(showers, grid: GridShape) -> PointCloud:
    """Every voxel with energy > 0 of showers (N, V) as a point, shower by shower in voxel order."""
    showers = tf.convert_to_tensor(showers)
    hits = tf.cast(tf.where(showers > 0), tf.int32)  # (P, 2): shower, voxel; row-major, so sorted by shower
    voxel = hits[:, 1]
    per_layer = grid.n_alpha * grid.n_r
    coordinates = tf.stack([voxel // per_layer, (voxel // grid.n_r) % grid.n_alpha, voxel % grid.n_r], axis=-1)
    counts = tf.reduce_sum(tf.cast(showers > 0, tf.int32), axis=-1)
    return PointCloud(coordinates, tf.gather_nd(showers, hits), hits[:, 0], counts)


def points_to_showers(coordinates, energies, segment_ids, n_showers, grid: GridShape) -> tf.Tensor:
    """Showers (N, V) from points; points that share a voxel of the same shower are summed.

    Args:
        coordinates: (P, 3) integer (z, alpha, r).
        energies: (P,) values.
        segment_ids: (P,) shower of each point, in [0, n_showers).
        n_showers: N (a scalar).
    """
    coordinates = tf.cast(coordinates, tf.int32)
    flat = coordinates[:, 0] * (grid.n_alpha * grid.n_r) + coordinates[:, 1] * grid.n_r + coordinates[:, 2]
    index = tf.stack([tf.cast(segment_ids, tf.int32), flat], axis=-1)
    energies = tf.convert_to_tensor(energies)
    zeros = tf.zeros(tf.stack([tf.cast(n_showers, tf.int32), grid.n_voxels]), energies.dtype)
    return tf.tensor_scatter_nd_add(zeros, index, energies)


def segment_mean(values, segment_ids, n_segments) -> tf.Tensor:
    """Mean of `values` (P, ...) per segment, (N, ...); 0 for a segment without points (never NaN)."""
    values = tf.convert_to_tensor(values)
    total = tf.math.unsorted_segment_sum(values, segment_ids, n_segments)
    count = tf.math.unsorted_segment_sum(tf.ones_like(values[:, :1] if values.shape.rank > 1 else values),
                                         segment_ids, n_segments)
    return total / tf.maximum(count, tf.ones_like(count))
