"""Histograms with the official binnings and their separation powers (docs/evaluation.md section 3).

Separation power of a reference histogram h and a generated one g, each normalised to unit sum over the bins in
range (values outside the range are dropped):  S = 1/2 * sum_i (h_i - g_i)^2 / (h_i + g_i + 1e-16),  0 <= S <= 1.
An empty histogram (no value in range) counts as all-zero, so it gives S = 1/2 against a filled one and 0 against
another empty one.
"""

from __future__ import annotations

import numpy as np

from calozoo.data.geometry import Geometry
from calozoo.evaluation.features import HighLevelFeatures, compute_features, threshold_showers

__all__ = [
    "separation_power",
    "histogram_edges",
    "histogram_values",
    "voxel_energy_counts",
    "separation_powers",
    "separation_powers_from_features",
    "summarize_separation",
    "feature_group",
    "DS1_ENERGIES_MEV",
]

SEPARATION_EPSILON = 1e-16
DS1_ENERGIES_MEV = tuple(2.0**k for k in range(8, 23))
_GROUPS = ("etot_einc", "e_layer", "ec_eta", "ec_phi", "width_eta", "width_phi", "ec_r", "width_r", "sparsity",
           "voxel_energy")


def separation_power(reference_counts: np.ndarray, generated_counts: np.ndarray) -> float:
    """Separation power of two histograms given as counts over the same bins.

    Example:
        >>> separation_power(np.array([1, 0]), np.array([0, 5]))
        1.0
        >>> separation_power(np.array([2, 2]), np.array([1, 1]))
        0.0
    """
    h = _unit_sum(np.asarray(reference_counts, np.float64))
    g = _unit_sum(np.asarray(generated_counts, np.float64))
    return float(0.5 * np.sum((h - g) ** 2 / (h + g + SEPARATION_EPSILON)))


def _unit_sum(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else counts


def _counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.histogram(np.asarray(values, np.float64), bins=edges)[0]


def _is_ds1(geometry: Geometry) -> bool:
    return geometry.name.startswith("1-")


def _log_edges(low: float, high: float, n_edges: int) -> np.ndarray:
    # Guard for a layer that never reaches the threshold in the reference: keep a valid increasing binning.
    high = max(float(high), 10.0 * low)
    return np.logspace(np.log10(low), np.log10(high), n_edges)


def _ds1_range(layer_id: int, wide_layers: tuple[int, ...], wide: float, narrow: float) -> float:
    return wide if layer_id in wide_layers else narrow


# CaloGAN cells are 5-160 mm wide over |x|, |y| < 240 mm: (EC half range, width top, EC_r top, width_r top) in mm.
_CALOGAN_RANGES = (100.0, 150.0, 200.0, 150.0)


def _shape_edges(name: str, layer_id: int, geometry: Geometry) -> np.ndarray:
    """Edges of the EC / width histograms of one layer (100 uniform bins)."""
    ds1 = _is_ds1(geometry)
    if geometry.name.startswith("calogan"):
        ec, width, ec_r, width_r = _CALOGAN_RANGES
        if name in ("ec_eta", "ec_phi"):
            return np.linspace(-ec, ec, 101)
        top = {"width_eta": width, "width_phi": width, "ec_r": ec_r}.get(name, width_r)
        return np.linspace(0.0, top, 101)
    if name in ("ec_eta", "ec_phi"):
        half = _ds1_range(layer_id, (12, 13), 500.0, 100.0) if ds1 else 30.0
        return np.linspace(-half, half, 101)
    if name in ("width_eta", "width_phi"):
        top = _ds1_range(layer_id, (12, 13), 400.0, 100.0) if ds1 else 30.0
    elif name == "ec_r":
        top = _ds1_range(layer_id, (12, 13, 14), 1500.0, 500.0) if ds1 else 42.0
    else:  # width_r
        top = _ds1_range(layer_id, (12, 13, 14), 1500.0, 500.0) if ds1 else 20.0
    return np.linspace(0.0, top, 101)


def _etot_einc_edges(energy_mev: float | None, geometry: Geometry) -> np.ndarray:
    if energy_mev is None:
        return np.linspace(0.5, 1.5, 101)
    if geometry.particle == "photon" and energy_mev >= 2.0**12:
        return np.linspace(0.9, 1.1, 21)
    return np.linspace(0.4, 1.4, 21)


def _ds1_energy_masks(energies: np.ndarray) -> dict[int, np.ndarray]:
    """Rows at each of the 15 discrete DS1 energies (relative tolerance 1e-6)."""
    return {int(e): np.isclose(energies, e, rtol=1e-6, atol=0.0) for e in DS1_ENERGIES_MEV}


def histogram_values(features: HighLevelFeatures, per_energy_panels: bool) -> dict[str, np.ndarray]:
    """The values filled into every high-level-feature histogram, keyed like `separation_powers` (no voxels).

    Args:
        per_energy_panels: add the DS1 panels "etot_einc_E<MeV>" (E_tot/E_inc of the showers at each energy).
    """
    values = {"etot_einc": features.total_energy / features.incident_energy}
    if per_energy_panels:
        for energy, mask in _ds1_energy_masks(features.incident_energy).items():
            values[f"etot_einc_E{energy}"] = values["etot_einc"][mask]
    for i, layer_id in enumerate(features.layer_ids):
        values[f"e_layer_{layer_id}"] = features.layer_energy[:, i]
    for name in ("ec_eta", "ec_phi", "width_eta", "width_phi"):
        for i, layer_id in enumerate(features.alpha_layer_ids):
            values[f"{name}_{layer_id}"] = getattr(features, name)[:, i]
    for name in ("ec_r", "width_r", "sparsity"):
        for i, layer_id in enumerate(features.layer_ids):
            values[f"{name}_{layer_id}"] = getattr(features, name)[:, i]
    return values


def histogram_edges(reference: HighLevelFeatures, geometry: Geometry,
                    reference_voxel_max: float) -> dict[str, np.ndarray]:
    """Official bin edges of every histogram; E_layer and voxel edges depend on the reference maxima."""
    threshold = geometry.evaluation_threshold_mev
    edges = {"etot_einc": _etot_einc_edges(None, geometry),
             "voxel_energy": _log_edges(threshold, reference_voxel_max, 50)}
    if _is_ds1(geometry):
        for energy in DS1_ENERGIES_MEV:
            edges[f"etot_einc_E{int(energy)}"] = _etot_einc_edges(energy, geometry)
    for i, layer_id in enumerate(reference.layer_ids):
        top = reference.layer_energy[:, i].max() if reference.n_showers else threshold
        edges[f"e_layer_{layer_id}"] = _log_edges(threshold, top, 40)
        for name in ("ec_r", "width_r"):
            edges[f"{name}_{layer_id}"] = _shape_edges(name, layer_id, geometry)
        edges[f"sparsity_{layer_id}"] = np.linspace(0.0, 1.0, 21)
    for layer_id in reference.alpha_layer_ids:
        for name in ("ec_eta", "ec_phi", "width_eta", "width_phi"):
            edges[f"{name}_{layer_id}"] = _shape_edges(name, layer_id, geometry)
    return edges


def voxel_energy_counts(showers: np.ndarray, geometry: Geometry, edges: np.ndarray, chunk: int = 2000) -> np.ndarray:
    """Histogram counts of every thresholded voxel of every shower (zeros fall below the range)."""
    counts = np.zeros(len(edges) - 1, np.int64)
    for start in range(0, len(showers), chunk):
        block = threshold_showers(showers[start : start + chunk], geometry.evaluation_threshold_mev)
        counts += _counts(block.reshape(-1), edges)
    return counts


def _max_thresholded_voxel(showers: np.ndarray, geometry: Geometry) -> float:
    top = float(np.max(showers)) if np.size(showers) else 0.0
    return top if top >= geometry.evaluation_threshold_mev else geometry.evaluation_threshold_mev


def separation_powers_from_features(generated: HighLevelFeatures, reference: HighLevelFeatures,
                                    edges: dict[str, np.ndarray]) -> dict[str, float]:
    """Separation power of every high-level histogram in `edges` (the voxel spectrum excluded)."""
    per_energy = any(key.startswith("etot_einc_E") for key in edges)
    gen_values = histogram_values(generated, per_energy)
    ref_values = histogram_values(reference, per_energy)
    return {key: separation_power(_counts(values, edges[key]), _counts(gen_values[key], edges[key]))
            for key, values in ref_values.items()}


def separation_powers(gen_showers, gen_energies, ref_showers, ref_energies, geometry: Geometry) -> dict[str, float]:
    """Separation power of every histogram of the official evaluation (and sparsity / EC_r / width_r).

    Args:
        gen_showers, ref_showers: (N, V) MeV, not yet thresholded.
        gen_energies, ref_energies: (N, 1) MeV.

    Returns:
        {"etot_einc", "etot_einc_E<MeV>" (DS1 only), "e_layer_<id>", "ec_eta_<id>", "ec_phi_<id>",
         "width_eta_<id>", "width_phi_<id>" (alpha-binned layers), "ec_r_<id>", "width_r_<id>",
         "sparsity_<id>", "voxel_energy"} -> float in [0, 1].
    """
    generated = compute_features(gen_showers, gen_energies, geometry)
    reference = compute_features(ref_showers, ref_energies, geometry)
    edges = histogram_edges(reference, geometry, _max_thresholded_voxel(ref_showers, geometry))
    powers = separation_powers_from_features(generated, reference, edges)
    voxel_edges = edges["voxel_energy"]
    powers["voxel_energy"] = separation_power(voxel_energy_counts(ref_showers, geometry, voxel_edges),
                                              voxel_energy_counts(gen_showers, geometry, voxel_edges))
    return powers


def feature_group(key: str) -> str:
    """The feature group of a histogram key: "e_layer_12" -> "e_layer", "etot_einc_E256" -> "etot_einc_per_energy"."""
    if key.startswith("etot_einc_E"):
        return "etot_einc_per_energy"
    for group in _GROUPS:
        if key == group or key.startswith(group + "_"):
            return group
    raise ValueError(f"Unknown histogram key '{key}'; expected one of the keys of `separation_powers`.")


def summarize_separation(powers: dict[str, float]) -> dict[str, float]:
    """Mean separation power per feature group, plus "all_high_level": the mean over every histogram except the
    voxel spectrum (E_tot/E_inc and its DS1 per-energy panels, E_layer, EC, widths, EC_r, width_r, sparsity)."""
    groups: dict[str, list[float]] = {}
    for key, value in powers.items():
        groups.setdefault(feature_group(key), []).append(float(value))
    summary = {group: float(np.mean(values)) for group, values in groups.items()}
    high_level = [float(v) for k, v in powers.items() if feature_group(k) != "voxel_energy"]
    if high_level:
        summary["all_high_level"] = float(np.mean(high_level))
    return summary
