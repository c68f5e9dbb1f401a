"""Calorimeter geometries: the CaloChallenge datasets (from the official binning XML files) and the CaloGAN detector.

CaloChallenge layers are polar (`Layer`: radial x angular bins); CaloGAN layers are Cartesian (`CartesianLayer`:
x by y cells, docs/calogan.md section 1.1). Both give voxel centres, flat slices and a `voxel_index`
that bins transverse positions, so code that works on a `Geometry` works on either.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import xml.etree.ElementTree as ET
from importlib import resources

import numpy as np

__all__ = ["Layer", "CartesianLayer", "Geometry", "DATASET_NAMES", "CALOGAN_DATASETS", "load_geometry",
           "geometry_for_voxels", "INCIDENT_ENERGY_RANGES_MEV", "check_incident_energy_range"]

CALOGAN_DATASETS = ("calogan-eplus", "calogan-gamma", "calogan-piplus")
DATASET_NAMES = ("1-photons", "1-pions", "2", "3") + CALOGAN_DATASETS

_XML_FILES = {
    "1-photons": ("binning_dataset_1_photons.xml", "photon"),
    "1-pions": ("binning_dataset_1_pions.xml", "pion"),
    "2": ("binning_dataset_2.xml", "electron"),
    "3": ("binning_dataset_3.xml", "electron"),
}

# Voxels below this energy (MeV) are zeroed by the official evaluation (docs/evaluation.md section 1).
# CaloGAN: the 0.01 MeV threshold that CaloFlow applies when it saves showers (docs/calogan.md section 2.4).
_EVALUATION_THRESHOLDS_MEV = {"1-photons": 1.0, "1-pions": 1.0, "2": 0.5e-3 / 0.033, "3": 0.5e-3 / 0.033,
                              **{name: 0.01 for name in CALOGAN_DATASETS}}


# Incident energies (MeV) each dataset was simulated with: DS1 2^8 .. 2^22 MeV (256 MeV .. 4.2 TeV), DS2 / DS3
# log-uniform 1 GeV .. 1 TeV, CaloGAN uniform 1 .. 100 GeV.
INCIDENT_ENERGY_RANGES_MEV = {"1-photons": (2.0**8, 2.0**22), "1-pions": (2.0**8, 2.0**22), "2": (1e3, 1e6),
                              "3": (1e3, 1e6), **{name: (1e3, 1e5) for name in CALOGAN_DATASETS}}
_RANGE_TOLERANCE = 1e-3  # relative: float32 round-off at the range's ends is inside


def _energy_text(mev: float) -> str:
    for unit, scale in (("TeV", 1e6), ("GeV", 1e3), ("MeV", 1.0)):
        if mev >= scale:
            return f"{mev / scale:.4g} {unit}"
    return f"{mev:.4g} MeV"


def _unit_guess(low: float, high: float, dataset: str) -> str:
    """What values outside the range look like: GeV (x 1000 fits), keV (/ 1000 fits), or nothing known."""
    lo, hi = INCIDENT_ENERGY_RANGES_MEV[dataset]
    for unit, factor in (("GeV", 1e3), ("TeV", 1e6), ("keV", 1e-3)):
        if lo * (1 - _RANGE_TOLERANCE) <= low * factor and high * factor <= hi * (1 + _RANGE_TOLERANCE):
            return f"they look like {unit} (x {factor:g} would fit)"
    return "they fit no unit of this dataset"


def check_incident_energy_range(energies, dataset: str, where: str = "incident energies") -> None:
    """Raises one clear ValueError (a CalozooError) if incident energies (MeV) leave `dataset`'s simulated range.

    calozoo takes and returns MeV everywhere; values of 1-100 for DS2 are GeV by mistake, not 1-100 MeV showers.
    """
    from calozoo.errors import EnergyRangeError

    if dataset not in INCIDENT_ENERGY_RANGES_MEV:
        return
    values = np.asarray(energies, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return
    lo, hi = INCIDENT_ENERGY_RANGES_MEV[dataset]
    low, high = float(values.min()), float(values.max())
    if lo * (1 - _RANGE_TOLERANCE) <= low and high <= hi * (1 + _RANGE_TOLERANCE):
        return
    outside = int(((values < lo * (1 - _RANGE_TOLERANCE)) | (values > hi * (1 + _RANGE_TOLERANCE))).sum())
    raise EnergyRangeError(
        f"{where}: {outside} of {values.size} lie outside dataset {dataset}'s range {_energy_text(lo)} to "
        f"{_energy_text(hi)} (found {low:.4g} to {high:.4g} MeV); calozoo expects MeV and "
        f"{_unit_guess(low, high, dataset)}."
        f" Convert them, or pass --allow-energy-range to use them on purpose.")


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

    @property
    def resolves_alpha(self) -> bool:
        """Whether the layer has more than one angular bin (so transverse centroids are defined)."""
        return self.n_alpha > 1

    def voxel_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(r, alpha) centre of every voxel of the layer in flat order, each shape (n_voxels,)."""
        alpha, r = np.meshgrid(self.alpha_centres, self.r_centres, indexing="ij")
        return r.reshape(-1), alpha.reshape(-1)

    def voxel_index(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Flat index inside the layer of the voxel holding each transverse point (mm); -1 outside the layer."""
        r, alpha = np.hypot(x, y), np.arctan2(y, x)
        r_bin = np.searchsorted(self.r_edges, r, side="right") - 1
        a_bin = np.minimum(((alpha + np.pi) / (2 * np.pi) * self.n_alpha).astype(np.int64), self.n_alpha - 1)
        inside = r < self.r_edges[-1]
        return np.where(inside, a_bin * self.n_r + r_bin, -1)


@dataclasses.dataclass(frozen=True)
class CartesianLayer:
    """One layer of Cartesian cells centred on the beam: `n_x` x `n_y` cells of `cell_x` x `cell_y` mm.

    Voxels are stored x-major (CaloGAN's array axis 0 = x): flat index inside the layer = ix * n_y + iy.
    `z_edges` are the layer's front and back faces along the beam, mm.
    """

    id: int
    n_x: int
    n_y: int
    cell_x: float
    cell_y: float
    z_edges: tuple[float, float]
    offset: int

    @property
    def n_voxels(self) -> int:
        return self.n_x * self.n_y

    @property
    def shape(self) -> tuple[int, int]:
        """(n_x, n_y): the layer's array shape in a CaloGAN file."""
        return (self.n_x, self.n_y)

    @property
    def depth(self) -> float:
        """Thickness along the beam, mm."""
        return self.z_edges[1] - self.z_edges[0]

    @property
    def voxel_slice(self) -> slice:
        """Columns of this layer in the flattened shower."""
        return slice(self.offset, self.offset + self.n_voxels)

    @property
    def resolves_alpha(self) -> bool:
        """Cartesian cells resolve both transverse directions."""
        return True

    def xy_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) centre of every cell in flat order, mm, each shape (n_voxels,)."""
        xs = (np.arange(self.n_x) + 0.5 - self.n_x / 2) * self.cell_x
        ys = (np.arange(self.n_y) + 0.5 - self.n_y / 2) * self.cell_y
        x, y = np.meshgrid(xs, ys, indexing="ij")
        return x.reshape(-1), y.reshape(-1)

    def voxel_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(r, alpha) of every cell centre in flat order (the polar form the CaloChallenge features use)."""
        x, y = self.xy_centres()
        return np.hypot(x, y), np.arctan2(y, x)

    def voxel_index(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Flat index inside the layer of the cell holding each transverse point (mm); -1 outside the binned area."""
        ix = np.floor(np.asarray(x) / self.cell_x + self.n_x / 2).astype(np.int64)
        iy = np.floor(np.asarray(y) / self.cell_y + self.n_y / 2).astype(np.int64)
        inside = (ix >= 0) & (ix < self.n_x) & (iy >= 0) & (iy < self.n_y)
        return np.where(inside, ix * self.n_y + iy, -1)


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
    layers: tuple[Layer | CartesianLayer, ...]

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
    def incident_energy_range_mev(self) -> tuple[float, float]:
        """The (lowest, highest) incident energy the dataset was simulated with, MeV."""
        return INCIDENT_ENERGY_RANGES_MEV[self.name]

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


# CaloGAN (docs/calogan.md section 1.1): (n_x, n_y), cell size (mm) and z faces (mm, detector front at -240) per layer.
_CALOGAN_LAYERS = (((3, 96), (160.0, 5.0), (-240.0, -150.0)),
                   ((12, 12), (40.0, 40.0), (-150.0, 197.0)),
                   ((12, 6), (40.0, 80.0), (197.0, 240.0)))


def _calogan_geometry(name: str) -> Geometry:
    layers, offset = [], 0
    for index, ((n_x, n_y), (cell_x, cell_y), z_edges) in enumerate(_CALOGAN_LAYERS):
        layers.append(CartesianLayer(index, n_x, n_y, cell_x, cell_y, z_edges, offset))
        offset += n_x * n_y
    return Geometry(name=name, particle=name.split("-", 1)[1], layers=tuple(layers))


@functools.lru_cache(maxsize=None)
def load_geometry(name: str) -> Geometry:
    """Geometry of a dataset: CaloChallenge '1-photons', '1-pions', '2', '3', or CaloGAN 'calogan-eplus',
    'calogan-gamma', 'calogan-piplus' (one detector, 504 voxels, three particles)."""
    if name in CALOGAN_DATASETS:
        return _calogan_geometry(name)
    if name not in _XML_FILES:
        raise ValueError(f"Unknown dataset '{name}'; expected one of {', '.join(DATASET_NAMES)}.")
    filename, particle = _XML_FILES[name]
    xml_text = resources.files("calozoo.data").joinpath("binning", filename).read_text()
    return _parse_binning(xml_text, name, particle)


def geometry_for_voxels(n_voxels: int) -> Geometry:
    """The dataset whose showers have `n_voxels` voxels (368, 533, 6480, 40500; 504 gives 'calogan-eplus')."""
    for name in DATASET_NAMES:
        geometry = load_geometry(name)
        if geometry.n_voxels == n_voxels:
            return geometry
    counts = ", ".join(str(load_geometry(n).n_voxels) for n in DATASET_NAMES)
    raise ValueError(f"No dataset has {n_voxels} voxels; expected one of {counts}.")
