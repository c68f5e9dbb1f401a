"""The histogram binnings of the official CaloChallenge evaluation, pinned from its documented values.

The expected edges are written out here from the official description (evaluate.py and its plotting helper at
CaloChallenge/homepage 9b41df7), not taken from calozoo: E_tot/E_inc 100 bins on [0.5, 1.5]; DS1 per-energy
panels 20 bins on [0.4, 1.4] ([0.9, 1.1] for photons from 4 096 MeV); E_layer 40 log edges from the voxel threshold
to the reference's largest layer energy; voxel spectrum 50 log edges from the threshold to the largest reference
voxel; EC_eta/EC_phi 100 bins on [-30, 30] mm (DS2/3), [-500, 500] (DS1 layers 12, 13), [-100, 100] (other DS1
layers); widths [0, 30] / [0, 400] / [0, 100]; EC_r [0, 42] / [0, 1500] (DS1 layers 12-14) / [0, 500]; width_r
[0, 20] / [0, 1500] / [0, 500]; sparsity 20 bins on [0, 1]. Thresholds: 1 MeV (DS1), 0.5e-3 / 0.033 MeV (DS2/3).

The published separation powers (calochallenge/final_results/*.hdf) cannot be reproduced here: they compare each
submission's 100 000 generated showers with the 100 000-shower GEANT4 test sets, and neither is on these machines
(the HDF files hold only the resulting numbers, not the histograms).
"""

import numpy as np
import pytest

from calozoo.data.geometry import load_geometry
from calozoo.evaluation.features import compute_features
from calozoo.evaluation.separation import histogram_edges, separation_powers
from tests.evaluation.helpers import synthetic_showers

THRESHOLDS_MEV = {"1-photons": 1.0, "1-pions": 1.0, "2": 0.5e-3 / 0.033, "3": 0.5e-3 / 0.033}
DS1_WIDE_EC_LAYERS, DS1_WIDE_R_LAYERS = (12, 13), (12, 13, 14)


def uniform(low, high, bins):
    return np.linspace(low, high, bins + 1)


def official_edges(dataset, layer_ids, alpha_layer_ids, layer_energy_max, voxel_max):
    """Every histogram's edges as the official evaluation defines them, keyed like `histogram_edges`."""
    threshold = THRESHOLDS_MEV[dataset]
    ds1 = dataset.startswith("1-")
    edges = {"etot_einc": uniform(0.5, 1.5, 100), "voxel_energy": np.logspace(np.log10(threshold),
                                                                              np.log10(voxel_max), 50)}
    if ds1:
        for k in range(8, 23):
            narrow = dataset == "1-photons" and 2**k >= 4096
            edges[f"etot_einc_E{2**k}"] = uniform(0.9, 1.1, 20) if narrow else uniform(0.4, 1.4, 20)
    for layer_id, top in zip(layer_ids, layer_energy_max):
        edges[f"e_layer_{layer_id}"] = np.logspace(np.log10(threshold), np.log10(top), 40)
        edges[f"sparsity_{layer_id}"] = uniform(0.0, 1.0, 20)
        wide = ds1 and layer_id in DS1_WIDE_R_LAYERS
        edges[f"ec_r_{layer_id}"] = uniform(0.0, 1500.0 if wide else 500.0 if ds1 else 42.0, 100)
        edges[f"width_r_{layer_id}"] = uniform(0.0, 1500.0 if wide else 500.0 if ds1 else 20.0, 100)
    for layer_id in alpha_layer_ids:
        wide = ds1 and layer_id in DS1_WIDE_EC_LAYERS
        half = 500.0 if wide else 100.0 if ds1 else 30.0
        width = 400.0 if wide else 100.0 if ds1 else 30.0
        edges[f"ec_eta_{layer_id}"] = edges[f"ec_phi_{layer_id}"] = uniform(-half, half, 100)
        edges[f"width_eta_{layer_id}"] = edges[f"width_phi_{layer_id}"] = uniform(0.0, width, 100)
    return edges


@pytest.mark.parametrize("dataset", list(THRESHOLDS_MEV))
def test_evaluation_thresholds(dataset):
    assert load_geometry(dataset).evaluation_threshold_mev == pytest.approx(THRESHOLDS_MEV[dataset], rel=1e-12)


@pytest.mark.parametrize("dataset", list(THRESHOLDS_MEV))
def test_histogram_edges_are_the_official_ones(dataset):
    geometry = load_geometry(dataset)
    energies, showers = synthetic_showers(dataset, 40, seed=3)
    reference = compute_features(showers, energies, geometry)
    voxel_max = float(showers.max())
    edges = histogram_edges(reference, geometry, voxel_max)
    expected = official_edges(dataset, reference.layer_ids, reference.alpha_layer_ids,
                              reference.layer_energy.max(axis=0), voxel_max)
    assert sorted(edges) == sorted(expected)
    for key, official in expected.items():
        np.testing.assert_allclose(edges[key], official, rtol=1e-12, atol=1e-12, err_msg=key)


def test_layer_ids_of_the_ds1_binnings():
    """The DS1 layer-dependent ranges key on these ids (layers 12-14 are the hadronic ones)."""
    assert compute_features(np.zeros((1, 368)), np.ones((1, 1)), load_geometry("1-photons")).layer_ids == \
        (0, 1, 2, 3, 12)
    pions = compute_features(np.zeros((1, 533)), np.ones((1, 1)), load_geometry("1-pions"))
    assert pions.layer_ids == (0, 1, 2, 3, 12, 13, 14) and pions.alpha_layer_ids == (1, 2, 12, 13)


def test_etot_einc_separation_uses_bins_of_one_hundredth_and_drops_values_out_of_range():
    """One voxel per shower carries ratio x E_inc. Reference 1.001 and 1.009 share the bin [1.00, 1.01); generated
    1.002 and 1.011 fall into [1.00, 1.01) and [1.01, 1.02); 1.6 is out of range and not counted. So h = (1, 0),
    g = (1/2, 1/2) and S = 1/2 (0.25 / 1.5 + 0.25 / 0.5) = 1/3 (any bin of 0.02 or more would give 0)."""
    geometry = load_geometry("2")

    def showers_with_ratios(ratios):
        incident = np.full((len(ratios), 1), 10_000.0)
        showers = np.zeros((len(ratios), geometry.n_voxels))
        showers[:, 100] = np.asarray(ratios) * incident[:, 0]
        return showers, incident

    reference, generated = showers_with_ratios([1.001, 1.009]), showers_with_ratios([1.002, 1.011, 1.6])
    powers = separation_powers(*generated, *reference, geometry)
    assert powers["etot_einc"] == pytest.approx(1.0 / 3.0, rel=1e-12)
