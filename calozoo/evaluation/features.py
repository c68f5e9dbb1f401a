"""High-level shower features of the official CaloChallenge evaluation (docs/evaluation.md section 2), in float64.

Every feature is computed from *thresholded* showers: voxels below `Geometry.evaluation_threshold_mev`
(1 MeV for DS1, 0.01515 MeV for DS2/3) are set to 0 first. Work is done layer by layer on float64 copies of one
layer's columns, so a large float32 DS3 array is never copied whole into float64.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from calozoo.data.geometry import Geometry, Layer

__all__ = [
    "HighLevelFeatures",
    "threshold_showers",
    "compute_features",
    "high_level_vector",
    "high_level_vector_names",
    "layer_energy_correlation",
    "classifier_inputs",
    "CLASSIFIER_INPUT_MODES",
]

# Epsilons of the official code (docs/evaluation.md section 7).
WEIGHT_EPSILON = 1e-16
LOG_EPSILON = 1e-8

CLASSIFIER_INPUT_MODES = ("cls-low", "cls-low-normed", "cls-high")


@dataclasses.dataclass(frozen=True)
class HighLevelFeatures:
    """Per-shower high-level features. N showers, L layers with voxels, A of them binned in alpha.

    Attributes:
        incident_energy: (N,) MeV.
        total_energy: (N,) MeV, sum of the thresholded voxels.
        layer_energy: (N, L) MeV.
        ec_eta, ec_phi: (N, A) energy-weighted mean of x = r cos(alpha), y = r sin(alpha), mm.
        width_eta, width_phi: (N, A) energy-weighted standard deviation of x, y, mm.
        ec_r, width_r: (N, L) energy-weighted mean and standard deviation of the radial bin centre, mm.
        sparsity: (N, L) 1 - fraction of the layer's voxels with energy > 0.
        layer_ids: ids of the L layers; alpha_layer_ids: ids of the A alpha-binned layers.
    """

    incident_energy: np.ndarray
    total_energy: np.ndarray
    layer_energy: np.ndarray
    ec_eta: np.ndarray
    ec_phi: np.ndarray
    width_eta: np.ndarray
    width_phi: np.ndarray
    ec_r: np.ndarray
    width_r: np.ndarray
    sparsity: np.ndarray
    layer_ids: tuple[int, ...]
    alpha_layer_ids: tuple[int, ...]

    @property
    def n_showers(self) -> int:
        return len(self.incident_energy)


def threshold_showers(showers: np.ndarray, threshold_mev: float) -> np.ndarray:
    """Float64 copy of `showers` with every voxel below `threshold_mev` set to 0 (negatives included)."""
    result = np.array(showers, dtype=np.float64, copy=True)
    result[result < threshold_mev] = 0.0
    return result


def _weighted_mean_and_width(energies: np.ndarray, weight_sum: np.ndarray, coordinate: np.ndarray):
    """Energy-weighted mean and sqrt(max(0, <c^2> - <c>^2)) of `coordinate` (V,) over the voxels of a layer."""
    mean = energies @ coordinate / weight_sum
    second = energies @ (coordinate * coordinate) / weight_sum
    return mean, np.sqrt(np.maximum(0.0, second - mean * mean))


def _layer_features(layer_showers: np.ndarray, layer: Layer) -> dict[str, np.ndarray]:
    """Features of one thresholded float64 layer block (N, n_voxels of the layer)."""
    r, alpha = layer.voxel_centres()
    energy = layer_showers.sum(axis=1)
    weight_sum = energy + WEIGHT_EPSILON
    out = {"energy": energy, "sparsity": 1.0 - (layer_showers > 0).mean(axis=1)}
    out["ec_r"], out["width_r"] = _weighted_mean_and_width(layer_showers, weight_sum, r)
    if layer.resolves_alpha:
        out["ec_eta"], out["width_eta"] = _weighted_mean_and_width(layer_showers, weight_sum, r * np.cos(alpha))
        out["ec_phi"], out["width_phi"] = _weighted_mean_and_width(layer_showers, weight_sum, r * np.sin(alpha))
    return out


def compute_features(showers: np.ndarray, energies: np.ndarray, geometry: Geometry,
                     threshold_mev: float | None = None) -> HighLevelFeatures:
    """High-level features of showers (N, V) MeV at incident energies (N, 1) MeV.

    Args:
        threshold_mev: voxel threshold; default `geometry.evaluation_threshold_mev`.

    Example:
        >>> from calozoo.data.geometry import load_geometry
        >>> g = load_geometry("2")
        >>> showers = np.zeros((1, g.n_voxels)); showers[0, 4] = 10.0       # layer 0, alpha bin 0, r bin 4
        >>> f = compute_features(showers, np.array([[20.0]]), g)
        >>> round(float(f.ec_r[0, 0]), 3), float(f.width_r[0, 0]), float(f.total_energy[0])
        (20.925, 0.0, 10.0)
    """
    showers = np.asarray(showers)
    energies = np.asarray(energies, np.float64).reshape(-1)
    if showers.ndim != 2 or showers.shape[1] != geometry.n_voxels:
        raise ValueError(f"`showers` must have shape (N, {geometry.n_voxels}) for dataset {geometry.name}; "
                         f"got {showers.shape}.")
    if len(energies) != len(showers):
        raise ValueError(f"`energies` has {len(energies)} rows but `showers` has {len(showers)}; pass one per shower.")
    threshold = geometry.evaluation_threshold_mev if threshold_mev is None else threshold_mev
    per_layer = [_layer_features(threshold_showers(showers[:, layer.voxel_slice], threshold), layer)
                 for layer in geometry.layers]
    alpha_layers = [i for i, layer in enumerate(geometry.layers) if layer.resolves_alpha]

    def stack(key, indices):
        if not indices:
            return np.zeros((len(showers), 0))
        return np.stack([per_layer[i][key] for i in indices], axis=1)

    all_layers = list(range(geometry.n_layers))
    layer_energy = stack("energy", all_layers)
    return HighLevelFeatures(
        incident_energy=energies, total_energy=layer_energy.sum(axis=1), layer_energy=layer_energy,
        ec_eta=stack("ec_eta", alpha_layers), ec_phi=stack("ec_phi", alpha_layers),
        width_eta=stack("width_eta", alpha_layers), width_phi=stack("width_phi", alpha_layers),
        ec_r=stack("ec_r", all_layers), width_r=stack("width_r", all_layers), sparsity=stack("sparsity", all_layers),
        layer_ids=geometry.layer_ids, alpha_layer_ids=tuple(geometry.layers[i].id for i in alpha_layers))


def high_level_vector(features: HighLevelFeatures, relative_energies: bool = False) -> np.ndarray:
    """The cls-high / FPD feature vector (N, 1 + 3L + 4A + 1) in the official order (docs/evaluation.md section 4).

    Lengths: 30 (1-photons), 46 (1-pions), 362 (DS2 and DS3).

    Args:
        relative_energies: write log10((E_layer + 1e-8) / E_inc) and log10((E_tot + 1e-8) / E_inc) instead of
            log10(E_layer + 1e-8) and log10(E_tot + 1e-8). The same information (log10 E_inc stays in column 0),
            in coordinates where axis-aligned trees (cls-hgb) can see an energy-scale error.
    """
    log_e_inc = np.log10(features.incident_energy)[:, None]
    offset = log_e_inc if relative_energies else 0.0
    blocks = [log_e_inc,
              np.log10(features.layer_energy + LOG_EPSILON) - offset,
              features.ec_eta / 100.0, features.ec_phi / 100.0,
              features.width_eta / 100.0, features.width_phi / 100.0,
              np.log10(features.total_energy + LOG_EPSILON)[:, None] - offset,
              features.sparsity, features.ec_r / 100.0, features.width_r / 100.0]
    return np.concatenate(blocks, axis=1)


def high_level_vector_names(features: HighLevelFeatures) -> list[str]:
    """Column names of `high_level_vector(features)`."""
    layers, alpha = features.layer_ids, features.alpha_layer_ids
    return (["log10_e_inc"] + [f"log10_e_layer_{i}" for i in layers]
            + [f"ec_eta_{i}" for i in alpha] + [f"ec_phi_{i}" for i in alpha]
            + [f"width_eta_{i}" for i in alpha] + [f"width_phi_{i}" for i in alpha] + ["log10_e_tot"]
            + [f"sparsity_{i}" for i in layers] + [f"ec_r_{i}" for i in layers] + [f"width_r_{i}" for i in layers])


def layer_energy_correlation(layer_energy: np.ndarray) -> np.ndarray:
    """Pearson correlation matrix (L, L) of the layer energies over showers; NaN -> 0, diagonal 1."""
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.atleast_2d(np.corrcoef(np.asarray(layer_energy, np.float64), rowvar=False))
    matrix = np.nan_to_num(matrix, nan=0.0)
    np.fill_diagonal(matrix, 1.0)
    return matrix


def _low_level_inputs(showers, energies, geometry: Geometry) -> np.ndarray:
    thresholded = threshold_showers(showers, geometry.evaluation_threshold_mev)
    return np.concatenate([np.log10(energies), thresholded / energies], axis=1)


def _normed_inputs(showers, energies, geometry: Geometry) -> np.ndarray:
    # Official quirk (docs/evaluation.md section 4): layer energies from thresholded showers, voxels only clipped at 0.
    features = compute_features(showers, energies, geometry)
    raw = np.maximum(np.asarray(showers, np.float64), 0.0)
    normed = [raw[:, layer.voxel_slice] / (features.layer_energy[:, [i]] + WEIGHT_EPSILON)
              for i, layer in enumerate(geometry.layers)]
    return np.concatenate([np.log10(energies)] + normed + [np.log10(features.layer_energy + LOG_EPSILON)], axis=1)


def classifier_inputs(mode: str, showers: np.ndarray, energies: np.ndarray, geometry: Geometry) -> np.ndarray:
    """One float64 row per shower for the DNN classifier `mode` (docs/evaluation.md section 4).

    - cls-low: [log10 E_inc, thresholded voxels / E_inc]            (1 + V columns)
    - cls-low-normed: [log10 E_inc, voxels / (E_layer + 1e-16), log10(E_layer + 1e-8)]   (1 + V + L)
    - cls-high: `high_level_vector`                                  (30 / 46 / 362)
    """
    energies = np.asarray(energies, np.float64).reshape(-1, 1)
    if mode == "cls-low":
        return _low_level_inputs(showers, energies, geometry)
    if mode == "cls-low-normed":
        return _normed_inputs(showers, energies, geometry)
    if mode == "cls-high":
        return high_level_vector(compute_features(showers, energies, geometry))
    raise ValueError(f"Unknown classifier input mode '{mode}'; expected one of {', '.join(CLASSIFIER_INPUT_MODES)}.")
