"""High-level features against hand-computed values."""

import math

import numpy as np
import pytest

from calozoo.data.geometry import load_geometry
from calozoo.evaluation.features import (
    classifier_inputs,
    compute_features,
    high_level_vector,
    high_level_vector_names,
    layer_energy_correlation,
)

PHOTONS = load_geometry("1-photons")


def _one_voxel_shower(layer_index: int, alpha_bin: int, r_bin: int, energy: float) -> np.ndarray:
    layer = PHOTONS.layers[layer_index]
    shower = np.zeros((1, PHOTONS.n_voxels))
    shower[0, layer.offset + alpha_bin * layer.n_r + r_bin] = energy
    return shower


def test_one_voxel_shower_matches_analytic_values():
    layer = PHOTONS.layers[1]                                # id 1: 10 alpha x 16 r bins
    shower = _one_voxel_shower(1, alpha_bin=3, r_bin=5, energy=7.0)
    shower[0, PHOTONS.layers[2].offset] = 0.5                # below the 1 MeV DS1 threshold: must vanish
    f = compute_features(shower, np.array([[256.0]]), PHOTONS)
    r_centre = 0.5 * (layer.r_edges[5] + layer.r_edges[6])   # 11 mm
    alpha_centre = -math.pi + 3.5 * 2 * math.pi / 10
    assert f.layer_ids == (0, 1, 2, 3, 12) and f.alpha_layer_ids == (1, 2)
    np.testing.assert_allclose(f.total_energy, [7.0])
    np.testing.assert_allclose(f.layer_energy, [[0.0, 7.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(f.ec_eta[0, 0], r_centre * math.cos(alpha_centre), rtol=1e-12)
    np.testing.assert_allclose(f.ec_phi[0, 0], r_centre * math.sin(alpha_centre), rtol=1e-12)
    np.testing.assert_allclose(f.ec_r[0], [0.0, r_centre, 0.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(f.width_eta[0, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(f.width_r[0, 1], 0.0, atol=1e-6)
    np.testing.assert_allclose(f.sparsity[0], [1.0, 1.0 - 1.0 / 160, 1.0, 1.0, 1.0])


def test_two_voxel_widths_are_half_the_distance():
    layer = PHOTONS.layers[2]                                # id 2: 10 alpha x 19 r bins
    shower = _one_voxel_shower(2, alpha_bin=0, r_bin=2, energy=4.0) + _one_voxel_shower(2, 0, 8, 4.0)
    f = compute_features(shower, np.array([[512.0]]), PHOTONS)
    r = [0.5 * (layer.r_edges[i] + layer.r_edges[i + 1]) for i in (2, 8)]
    np.testing.assert_allclose(f.ec_r[0, 2], np.mean(r), rtol=1e-12)
    np.testing.assert_allclose(f.width_r[0, 2], abs(r[1] - r[0]) / 2, rtol=1e-9)
    np.testing.assert_allclose(f.width_eta[0, 1], abs(r[1] - r[0]) / 2 * abs(math.cos(-math.pi + math.pi / 10)),
                               rtol=1e-9)


@pytest.mark.parametrize("dataset, length", [("1-photons", 30), ("1-pions", 46), ("2", 362)])
def test_high_level_vector_has_the_official_length(dataset, length):
    geometry = load_geometry(dataset)
    showers = np.random.default_rng(0).exponential(5.0, (3, geometry.n_voxels))
    f = compute_features(showers, np.full((3, 1), 1000.0), geometry)
    vector = high_level_vector(f)
    assert vector.shape == (3, length) and len(high_level_vector_names(f)) == length
    np.testing.assert_allclose(vector[:, 0], 3.0)
    relative = high_level_vector(f, relative_energies=True)
    e_tot_column = high_level_vector_names(f).index("log10_e_tot")
    np.testing.assert_allclose(relative[:, e_tot_column], vector[:, e_tot_column] - 3.0)
    np.testing.assert_allclose(relative[:, 1], vector[:, 1] - 3.0)


def test_classifier_input_dimensions_and_normalisation():
    showers = np.random.default_rng(1).exponential(5.0, (4, PHOTONS.n_voxels))
    energies = np.full((4, 1), 1024.0)
    low = classifier_inputs("cls-low", showers, energies, PHOTONS)
    normed = classifier_inputs("cls-low-normed", showers, energies, PHOTONS)
    assert low.shape == (4, 369) and normed.shape == (4, 374)
    thresholded = np.where(showers < 1.0, 0.0, showers)
    np.testing.assert_allclose(low[:, 1:], thresholded / 1024.0)
    layer = PHOTONS.layers[1]
    layer_energy = thresholded[:, layer.voxel_slice].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(normed[:, 1 + layer.offset : 1 + layer.offset + layer.n_voxels],
                               showers[:, layer.voxel_slice] / layer_energy, rtol=1e-12)
    with pytest.raises(ValueError, match="Unknown classifier input mode 'cls-mid'"):
        classifier_inputs("cls-mid", showers, energies, PHOTONS)


def test_layer_energy_correlation_replaces_nan():
    energies = np.array([[1.0, 2.0, 0.0], [2.0, 4.1, 0.0], [3.0, 5.9, 0.0]])
    matrix = layer_energy_correlation(energies)
    assert matrix[0, 1] > 0.99 and matrix[0, 2] == 0.0
    np.testing.assert_array_equal(np.diag(matrix), 1.0)


def test_wrong_shapes_raise():
    with pytest.raises(ValueError, match=r"must have shape \(N, 368\)"):
        compute_features(np.zeros((2, 533)), np.ones((2, 1)), PHOTONS)
    with pytest.raises(ValueError, match="one per shower"):
        compute_features(np.zeros((2, 368)), np.ones((3, 1)), PHOTONS)
