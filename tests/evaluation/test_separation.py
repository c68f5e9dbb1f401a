"""Separation powers: the formula, the official keys and binnings, and the GEANT4 sensitivity check."""

import numpy as np
import pytest

from calozoo.data.geometry import load_geometry
from calozoo.evaluation.separation import feature_group, separation_power, separation_powers, summarize_separation
from tests.evaluation.helpers import ds2_geant4_halves, synthetic_showers


def test_separation_power_formula():
    assert separation_power(np.array([3, 1]), np.array([3, 1])) == 0.0
    assert separation_power(np.array([1, 0, 0]), np.array([0, 0, 7])) == pytest.approx(1.0)
    # h = (0.5, 0.5), g = (1, 0): 0.5 * (0.25 / 1.5 + 0.25 / 0.5) = 1/3
    assert separation_power(np.array([2, 2]), np.array([9, 0])) == pytest.approx(1.0 / 3.0)
    assert separation_power(np.array([2, 2]), np.array([0, 0])) == pytest.approx(0.5)   # empty histogram


def test_identical_samples_give_zero_for_every_histogram():
    energies, showers = synthetic_showers("1-photons", 300, seed=0)
    powers = separation_powers(showers, energies, showers, energies, load_geometry("1-photons"))
    assert max(powers.values()) == 0.0
    expected = {"etot_einc", "voxel_energy", "e_layer_12", "ec_eta_1", "width_phi_2", "ec_r_0", "width_r_12",
                "sparsity_3", "etot_einc_E256", "etot_einc_E4194304"}
    assert expected <= set(powers)
    assert "ec_eta_0" not in powers            # layer 0 has one alpha bin
    assert len([k for k in powers if k.startswith("etot_einc_E")]) == 15


def test_ds2_has_one_histogram_per_feature_and_layer():
    energies, showers = synthetic_showers("2", 50, seed=1)
    other_energies, other = synthetic_showers("2", 60, seed=2)
    powers = separation_powers(showers, energies, other, other_energies, load_geometry("2"))
    assert len(powers) == 1 + 45 * 7 + 45 + 1
    assert not any(k.startswith("etot_einc_E") for k in powers)
    assert all(0.0 <= v <= 1.0 for v in powers.values())
    assert min(v for k, v in powers.items() if k.startswith("e_layer_")) > 0.0


def test_summary_groups_and_overall_mean():
    powers = {"etot_einc": 0.4, "etot_einc_E256": 0.2, "e_layer_0": 0.1, "e_layer_1": 0.3, "ec_r_0": 0.0,
              "voxel_energy": 0.9}
    summary = summarize_separation(powers)
    assert summary["e_layer"] == pytest.approx(0.2)
    assert summary["etot_einc"] == 0.4 and summary["etot_einc_per_energy"] == 0.2
    assert summary["all_high_level"] == pytest.approx(1.0 / 5)          # voxel spectrum excluded
    assert feature_group("width_eta_12") == "width_eta" and feature_group("width_r_3") == "width_r"
    with pytest.raises(ValueError, match="Unknown histogram key 'nonsense_1'"):
        feature_group("nonsense_1")


def test_energy_scale_error_shows_in_etot_but_not_in_shapes():
    (gen_e, gen_s), (ref_e, ref_s) = ds2_geant4_halves(1000)
    geometry = load_geometry("2")
    floor = summarize_separation(separation_powers(gen_s, gen_e, ref_s, ref_e, geometry))
    scaled = summarize_separation(separation_powers(gen_s * 1.1, gen_e, ref_s, ref_e, geometry))
    assert scaled["etot_einc"] > 0.3 and scaled["etot_einc"] > 10 * floor["etot_einc"]
    for group in ("ec_r", "width_r", "width_eta", "ec_eta"):
        assert scaled[group] == pytest.approx(floor[group], rel=0.1, abs=0.002), group
