"""Point-cloud shower-shape diagnostics (the CaloPointFlow seed's `plot -p cov_eigenvalues,means,num_hits,marginals`),
as per-shower numbers for any model's showers, and their separation powers between two samples.

Coordinates. Every voxel gets the position (z, alpha, r) in **bin indices**, as the seed does: z = the layer id,
alpha = the angular bin index 0 .. n_alpha - 1 and r = the radial bin index 0 .. n_r - 1 inside its layer. alpha is
treated as a plain linear coordinate (no circular statistics): this reproduces the seed's numbers, and it is what the
seed's plots compare. A shower whose energy straddles the alpha = 0 / n_alpha - 1 seam shows up with a larger alpha
variance than its physical spread; as the same convention is applied to both samples, the comparison stays fair.
The CaloChallenge datasets 1, 2 and 3 are supported (in dataset 1 the radial binning differs from layer to layer,
so an r index means different radii in different layers). CaloGAN layers are Cartesian strips without (alpha, r)
bins, so they raise an error.

Energies. The shape numbers (means, covariance eigenvalues, profiles) use the showers after the official
evaluation threshold (`Geometry.evaluation_threshold_mev`; voxels below it set to 0), like every other feature of
`calozoo evaluate`; pass `threshold_mev=0` to use every voxel above zero as the seed does. Two hit counts are kept:
`n_hits` = voxels > 0 (the seed's definition, no threshold) and `n_hits_above_threshold` = voxels >= the threshold
(the count behind the official sparsity). The covariance is the energy-weighted one, normalised by sum(E) (the
seed divides by sum(E) - 1 with E in MeV, which differs by less than 0.1 % for showers above 1 GeV). Its three
eigenvalues are sorted in decreasing order. An empty shower (no energy after the threshold) gets means,
eigenvalues and profiles of 0 and no NaN.

    >>> from calozoo.data.geometry import load_geometry
    >>> g = load_geometry("2")
    >>> showers = np.zeros((1, g.n_voxels)); showers[0, [0, 144 * 2]] = 50.0     # layers 0 and 2, alpha 0, r 0
    >>> d = shape_diagnostics(showers, g)
    >>> d.means[0].tolist(), d.eigenvalues[0].tolist(), int(d.n_hits[0])
    ([1.0, 0.0, 0.0], [1.0, 0.0, 0.0], 2)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from calozoo.data.geometry import Geometry, Layer
from calozoo.evaluation.features import threshold_showers
from calozoo.evaluation.separation import separation_power

__all__ = [
    "ShapeDiagnostics",
    "shape_diagnostics",
    "check_shape_geometry",
    "voxel_bin_positions",
    "shape_histogram_edges",
    "shape_separation",
    "summarize_shape",
    "shape_group",
    "diagnostics_table",
    "write_table_csv",
    "SHAPE_GROUPS",
    "COORDINATES",
]

COORDINATES = ("z", "alpha", "r")
SHAPE_GROUPS = ("cov_eigenvalue", "mean", "n_hits", "longitudinal_fraction", "radial_fraction")
# Second moments, upper triangle of the 3 x 3 matrix, in this order.
_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


@dataclasses.dataclass(frozen=True)
class ShapeDiagnostics:
    """Per-shower shape diagnostics of N showers; positions in bin indices (see the module docstring).

    Attributes:
        eigenvalues: (N, 3) eigenvalues of the energy-weighted covariance of (z, alpha, r), largest first.
        means: (N, 3) energy-weighted means of z, alpha and r.
        n_hits: (N,) voxels with energy > 0 (no threshold).
        n_hits_above_threshold: (N,) voxels with energy >= `threshold_mev`.
        longitudinal_profile: (N, L) fraction of the shower's energy in each layer (0 for an empty shower).
        radial_profile: (N, R) fraction of the shower's energy in each radial bin index, all layers together.
        layer_ids: ids of the L layers; threshold_mev: the threshold used for every number but `n_hits`.
    """

    eigenvalues: np.ndarray
    means: np.ndarray
    n_hits: np.ndarray
    n_hits_above_threshold: np.ndarray
    longitudinal_profile: np.ndarray
    radial_profile: np.ndarray
    layer_ids: tuple[int, ...]
    threshold_mev: float

    @property
    def n_showers(self) -> int:
        """Number of showers N."""
        return len(self.n_hits)

    def histogram_values(self) -> dict[str, np.ndarray]:
        """Every per-shower number, keyed like the separation powers: "cov_eigenvalue_1" (largest) .. "_3",
        "mean_z", "mean_alpha", "mean_r", "n_hits", "n_hits_above_threshold", "longitudinal_fraction_<layer id>",
        "radial_fraction_<r index>"."""
        values = {f"cov_eigenvalue_{k + 1}": self.eigenvalues[:, k] for k in range(3)}
        values.update({f"mean_{name}": self.means[:, k] for k, name in enumerate(COORDINATES)})
        values["n_hits"] = self.n_hits.astype(np.float64)
        values["n_hits_above_threshold"] = self.n_hits_above_threshold.astype(np.float64)
        values.update({f"longitudinal_fraction_{layer_id}": self.longitudinal_profile[:, i]
                       for i, layer_id in enumerate(self.layer_ids)})
        values.update({f"radial_fraction_{k}": self.radial_profile[:, k] for k in range(self.radial_profile.shape[1])})
        return values


def check_shape_geometry(geometry: Geometry) -> None:
    """Raises ValueError unless every layer of `geometry` is binned in (alpha, r) (CaloChallenge datasets)."""
    if not all(isinstance(layer, Layer) for layer in geometry.layers):
        raise ValueError(f"Shape diagnostics need (z, alpha, r) bins, but dataset '{geometry.name}' has Cartesian "
                         f"cells (CaloGAN); use them with the CaloChallenge datasets 1-photons, 1-pions, 2 or 3, and "
                         f"the hist / seed modes for CaloGAN.")


def voxel_bin_positions(geometry: Geometry) -> np.ndarray:
    """(V, 3) float64 position (layer id, alpha bin index, r bin index) of every voxel, in flat shower order."""
    check_shape_geometry(geometry)
    blocks = []
    for layer in geometry.layers:
        alpha, r = np.meshgrid(np.arange(layer.n_alpha), np.arange(layer.n_r), indexing="ij")   # alpha-major order
        blocks.append(np.stack([np.full(layer.n_voxels, layer.id), alpha.reshape(-1), r.reshape(-1)], axis=1))
    return np.concatenate(blocks).astype(np.float64)


def _linear_weights(geometry: Geometry, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V, 10 + L + R) matrix whose product with a shower gives its energy, first and second moments of the centred
    positions, layer energies and radial-bin energies; and the centre subtracted (for numerical accuracy)."""
    centre = 0.5 * (positions.min(axis=0) + positions.max(axis=0))
    x = positions - centre
    moments = [np.ones(len(x))] + [x[:, k] for k in range(3)] + [x[:, a] * x[:, b] for a, b in _PAIRS]
    n_r = max(layer.n_r for layer in geometry.layers)
    layer_columns = np.zeros((len(x), geometry.n_layers))
    for i, layer in enumerate(geometry.layers):
        layer_columns[layer.voxel_slice, i] = 1.0
    radial_columns = np.zeros((len(x), n_r))
    radial_columns[np.arange(len(x)), positions[:, 2].astype(np.int64)] = 1.0
    return np.concatenate([np.stack(moments, axis=1), layer_columns, radial_columns], axis=1), centre


def _moments_to_shape(sums: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(means (n, 3), eigenvalues (n, 3) largest first) from the energy, first and second moment sums (n, 10)."""
    energy = sums[:, 0]
    safe = np.where(energy > 0, energy, 1.0)[:, None]
    mean = sums[:, 1:4] / safe
    second = np.zeros((len(sums), 3, 3))
    for column, (a, b) in enumerate(_PAIRS):
        second[:, a, b] = second[:, b, a] = sums[:, 4 + column] / safe[:, 0]
    covariance = second - mean[:, :, None] * mean[:, None, :]
    eigenvalues = np.clip(np.linalg.eigvalsh(covariance)[:, ::-1], 0.0, None)
    empty = energy <= 0
    eigenvalues[empty] = 0.0
    means = np.where(empty[:, None], 0.0, mean + centre)
    return means, eigenvalues


def _fractions(energies: np.ndarray, total: np.ndarray) -> np.ndarray:
    return energies / np.where(total > 0, total, 1.0)[:, None]


def shape_diagnostics(showers: np.ndarray, geometry: Geometry, threshold_mev: float | None = None,
                      chunk_size: int = 512) -> ShapeDiagnostics:
    """Shape diagnostics of every shower (N, V) MeV, computed `chunk_size` showers at a time in float64.

    Memory stays bounded by a (chunk_size, V) float64 block (DS3, 512 showers: 166 MB) whatever N is.

    Args:
        showers: (N, V) energies in MeV, V = `geometry.n_voxels`.
        geometry: a CaloChallenge geometry (`load_geometry("2")`...).
        threshold_mev: voxel threshold for the shape numbers; default `geometry.evaluation_threshold_mev`, 0 for
            the seed's "every voxel above zero".
        chunk_size: showers per block.

    Returns:
        A `ShapeDiagnostics`.
    """
    showers = np.asarray(showers)
    positions = voxel_bin_positions(geometry)     # raises first for a geometry without (alpha, r) bins
    if showers.ndim != 2 or showers.shape[1] != geometry.n_voxels:
        raise ValueError(f"`showers` must have shape (N, {geometry.n_voxels}) for dataset {geometry.name}; "
                         f"got {showers.shape}.")
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be >= 1; got {chunk_size}.")
    threshold = geometry.evaluation_threshold_mev if threshold_mev is None else float(threshold_mev)
    weights, centre = _linear_weights(geometry, positions)
    sums, hits, hits_above = [], [], []
    for start in range(0, len(showers), chunk_size):
        raw = showers[start : start + chunk_size]
        block = threshold_showers(raw, threshold)
        sums.append(block @ weights)
        hits.append((raw > 0).sum(axis=1))
        hits_above.append((block > 0).sum(axis=1))
    sums = np.concatenate(sums) if sums else np.zeros((0, weights.shape[1]))
    means, eigenvalues = _moments_to_shape(sums[:, :10], centre)
    layer_end = 10 + geometry.n_layers
    return ShapeDiagnostics(
        eigenvalues=eigenvalues, means=means,
        n_hits=np.concatenate(hits).astype(np.int64) if hits else np.zeros(0, np.int64),
        n_hits_above_threshold=np.concatenate(hits_above).astype(np.int64) if hits else np.zeros(0, np.int64),
        longitudinal_profile=_fractions(sums[:, 10:layer_end], sums[:, 0]),
        radial_profile=_fractions(sums[:, layer_end:], sums[:, 0]),
        layer_ids=geometry.layer_ids, threshold_mev=threshold)


def shape_histogram_edges(reference: ShapeDiagnostics, n_bins: int = 50) -> dict[str, np.ndarray]:
    """Edges of every diagnostic's histogram: `n_bins` uniform bins over the (non-empty) reference sample's range (a
    range of width 0 becomes +-0.5 around its value; hit counts get bins at least 1 hit wide, centred on integers)."""
    edges = {}
    for key, values in reference.histogram_values().items():
        low, high = float(values.min()), float(values.max())
        if key.startswith("n_hits"):
            width = max(1.0, np.ceil((high - low + 1.0) / n_bins))
            edges[key] = np.arange(low - 0.5, high + width, width)
        elif high > low:
            edges[key] = np.linspace(low, high, n_bins + 1)
        else:
            edges[key] = np.array([low - 0.5, low + 0.5])
    return edges


def _counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.histogram(np.asarray(values, np.float64), bins=edges)[0]


def _outside(values: np.ndarray, edges: np.ndarray) -> float:
    return float(np.mean((values < edges[0]) | (values > edges[-1]))) if len(values) else 0.0


def shape_separation(generated: ShapeDiagnostics, reference: ShapeDiagnostics,
                     edges: dict[str, np.ndarray] | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Separation power of every diagnostic's histogram, generated vs reference, with the protocol of the official
    histograms (`separation.separation_power`: unit-sum histograms, values outside the edges dropped).

    Args:
        edges: histogram edges per key; default `shape_histogram_edges(reference)`.

    Returns:
        (separation power per key, fraction of the generated values outside the reference range per key).
    """
    if generated.n_showers == 0 or reference.n_showers == 0:
        raise ValueError(f"Shape diagnostics need at least one shower per sample; got {generated.n_showers} generated "
                         f"and {reference.n_showers} reference showers.")
    edges = shape_histogram_edges(reference) if edges is None else edges
    gen_values, ref_values = generated.histogram_values(), reference.histogram_values()
    if set(gen_values) != set(ref_values):
        raise ValueError("The generated and reference diagnostics come from different geometries; compute both with "
                         "the same dataset.")
    powers = {key: separation_power(_counts(ref_values[key], edges[key]), _counts(gen_values[key], edges[key]))
              for key in ref_values}
    outside = {key: _outside(gen_values[key], edges[key]) for key in ref_values}
    return powers, outside


_TABLE_COLUMNS = ("separation_power", "generated_mean", "reference_mean", "generated_std", "reference_std",
                  "generated_outside_reference_range")


def diagnostics_table(generated: ShapeDiagnostics, reference: ShapeDiagnostics, powers: dict[str, float],
                      outside: dict[str, float]) -> dict[str, dict[str, float]]:
    """{diagnostic: {separation_power, generated_mean, reference_mean, generated_std, reference_std,
    generated_outside_reference_range}} for every key of `powers` (from `shape_separation`)."""
    gen_values, ref_values = generated.histogram_values(), reference.histogram_values()
    return {key: {"separation_power": powers[key], "generated_mean": float(np.mean(gen_values[key])),
                  "reference_mean": float(np.mean(ref_values[key])), "generated_std": float(np.std(gen_values[key])),
                  "reference_std": float(np.std(ref_values[key])), "generated_outside_reference_range": outside[key]}
            for key in powers}


def write_table_csv(table: dict[str, dict[str, float]], path) -> None:
    """Writes `diagnostics_table(...)` as CSV: a header, then one row per diagnostic."""
    lines = [",".join(("diagnostic",) + _TABLE_COLUMNS)]
    lines += [",".join([key] + [f"{row[column]:.6g}" for column in _TABLE_COLUMNS]) for key, row in table.items()]
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def shape_group(key: str) -> str:
    """The group of a diagnostic key: "cov_eigenvalue_2" -> "cov_eigenvalue", "n_hits_above_threshold" -> "n_hits"."""
    for group in SHAPE_GROUPS:
        if key == group or key.startswith(group + "_"):
            return group
    raise ValueError(f"Unknown shape diagnostic '{key}'; expected a key of `ShapeDiagnostics.histogram_values()`.")


def summarize_shape(powers: dict[str, float]) -> dict[str, float]:
    """Mean separation power per group (`SHAPE_GROUPS`) and "all_shape", the mean over every diagnostic."""
    groups: dict[str, list[float]] = {}
    for key, value in powers.items():
        groups.setdefault(shape_group(key), []).append(float(value))
    summary = {group: float(np.mean(values)) for group, values in groups.items()}
    if powers:
        summary["all_shape"] = float(np.mean([float(v) for v in powers.values()]))
    return summary
