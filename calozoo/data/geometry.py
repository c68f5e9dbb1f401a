"""CaloChallenge geometries read from the official binning XML files."""

from __future__ import annotations

import dataclasses
import functools
import math
import xml.etree.ElementTree as ET
from importlib import resources

import numpy as np

__all__ = ["Layer", "Geometry", "DATASET_NAMES", "load_geometry", "geometry_for_voxels"]

DATASET_NAMES = ("1-photons", "1-pions", "2", "3")

_XML_FILES = {
    "1-photons": ("binning_dataset_1_photons.xml", "photon"),
    "1-pions": ("binning_dataset_1_pions.xml", "pion"),
    "2": ("binning_dataset_2.xml", "electron"),
    "3": ("binning_dataset_3.xml", "electron"),
}

# Voxels below this energy (MeV) are zeroed by the official evaluation (EVALUATION.md section 2).
_EVALUATION_THRESHOLDS_MEV = {"1-photons": 1.0, "1-pions": 1.0, "2": 0.5e-3 / 0.033, "3": 0.5e-3 / 0.033}


@dataclasses.dataclass(frozen=True)
class Layer:
    """One calorimeter layer that has voxels: `n_alpha` angular x `n_r` radial bins.

    Voxels are stored alpha-major: flat index inside the layer = alpha * n_r + r.
    """

    id: int
    r_edges: tuple[float, ...]
    n_alpha: int
    offset: int

    @property
    def n_r(self) -> int:
        return len(self.r_edges) - 1

    @property
    def n_voxels(self) -> int:
        return self.n_r * self.n_alpha

    @property
    def voxel_slice(self) -> slice:
        """Columns of this layer in the flattened shower."""
        return slice(self.offset, self.offset + self.n_voxels)

    @property
    def r_centres(self) -> np.ndarray:
        """Radial bin centres in mm, shape (n_r,)."""
        edges = np.asarray(self.r_edges)
        return 0.5 * (edges[1:] + edges[:-1])

    @property
    def alpha_centres(self) -> np.ndarray:
        """Angular bin centres in radians on [-pi, pi), shape (n_alpha,); 0 for a layer with one bin."""
        if self.n_alpha == 1:
            return np.zeros(1)
        width = 2.0 * math.pi / self.n_alpha
        return -math.pi + (np.arange(self.n_alpha) + 0.5) * width

    def voxel_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(r, alpha) centre of every voxel of the layer in flat order, each shape (n_voxels,)."""
        alpha, r = np.meshgrid(self.alpha_centres, self.r_centres, indexing="ij")
        return r.reshape(-1), alpha.reshape(-1)


@dataclasses.dataclass(frozen=True)
class Geometry:
    """The voxelisation of one CaloChallenge dataset.

    Example:
        >>> g = load_geometry("1-photons")
        >>> g.n_voxels, g.layer_sizes
        (368, (8, 160, 190, 5, 5))
    """

    name: str
    particle: str
    layers: tuple[Layer, ...]

    @property
    def n_voxels(self) -> int:
        return sum(layer.n_voxels for layer in self.layers)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return tuple(layer.n_voxels for layer in self.layers)

    @property
    def layer_ids(self) -> tuple[int, ...]:
        return tuple(layer.id for layer in self.layers)

    @property
    def evaluation_threshold_mev(self) -> float:
        """Voxel threshold of the official evaluation, in MeV."""
        return _EVALUATION_THRESHOLDS_MEV[self.name]

    def layer_energies(self, showers: np.ndarray) -> np.ndarray:
        """Energy per layer, shape (N, n_layers), for showers of shape (N, n_voxels)."""
        showers = np.asarray(showers)
        return np.stack([showers[:, layer.voxel_slice].sum(axis=1) for layer in self.layers], axis=1)

    def voxel_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(r, alpha) centre of every voxel in flat shower order, each shape (n_voxels,)."""
        parts = [layer.voxel_centres() for layer in self.layers]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _parse_binning(xml_text: str, name: str, particle: str) -> Geometry:
    root = ET.fromstring(xml_text)
    bins = [b for b in root.iter("Bin") if b.get("name") == particle]
    if len(bins) != 1:
        raise ValueError(f"Binning for dataset '{name}' has {len(bins)} <Bin name='{particle}'> entries; expected 1.")
    layers, offset = [], 0
    for element in bins[0].iter("Layer"):
        edges = tuple(float(v) for v in element.get("r_edges").split(","))
        if len(edges) < 2:  # r_edges="0": a layer without voxels
            continue
        layer = Layer(id=int(element.get("id")), r_edges=edges, n_alpha=int(element.get("n_bin_alpha")), offset=offset)
        layers.append(layer)
        offset += layer.n_voxels
    return Geometry(name=name, particle=particle, layers=tuple(layers))


@functools.lru_cache(maxsize=None)
def load_geometry(name: str) -> Geometry:
    """Geometry of a CaloChallenge dataset: '1-photons', '1-pions', '2' or '3'."""
    if name not in _XML_FILES:
        raise ValueError(f"Unknown dataset '{name}'; expected one of {', '.join(DATASET_NAMES)}.")
    filename, particle = _XML_FILES[name]
    xml_text = resources.files("calozoo.data").joinpath("binning", filename).read_text()
    return _parse_binning(xml_text, name, particle)


def geometry_for_voxels(n_voxels: int) -> Geometry:
    """The dataset whose showers have `n_voxels` voxels (368, 533, 6480 or 40500)."""
    for name in DATASET_NAMES:
        geometry = load_geometry(name)
        if geometry.n_voxels == n_voxels:
            return geometry
    counts = ", ".join(str(load_geometry(n).n_voxels) for n in DATASET_NAMES)
    raise ValueError(f"No CaloChallenge dataset has {n_voxels} voxels; expected one of {counts}.")
