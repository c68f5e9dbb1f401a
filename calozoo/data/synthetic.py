"""A parametric shower generator that fills any calozoo geometry: SYNTHETIC showers, not GEANT4.

Each shower deposits a fluctuating fraction of its incident energy as energy "spots". A spot's depth follows a
longitudinal gamma profile whose maximum grows with log(E_inc); its distance from the shower axis follows a
core + tail mixture of the form 2rR²/(r² + R²)² whose radii grow with depth; its azimuth is uniform around an axis
that is displaced per shower. Spots are binned into the voxels of the dataset's layers; spots past the last layer
or the binned area leak. The number of spots grows like sqrt(E_inc), which sets the fluctuations and the sparsity.
A shower may start late (photon conversion, a hadron's first interaction): an exponential start depth.

DS1 showers use the 15 discrete DS1 energies, DS2/DS3 log-uniform 1 GeV..1 TeV, CaloGAN uniform 1..100 GeV
(see incident_energies.py). The CaloGAN e+, gamma and pi+ showers differ in start depth, spread and deposit;
depths are in radiation lengths (e+, gamma) or interaction lengths (pi+) of 80 x (2 mm Pb + 4 mm LAr).
Files written from here carry the attribute `synthetic = True` and a description saying so.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from calozoo.data.geometry import Geometry, load_geometry
from calozoo.data.incident_energies import sample_incident_energies

__all__ = ["ShowerPhysics", "PHYSICS", "synthesize_showers", "synthetic_dataset"]


@dataclasses.dataclass(frozen=True)
class ShowerPhysics:
    """Parameters of the synthetic showers of one dataset (depths in radiation or interaction lengths, radii in mm)."""

    layer_depth_edges: dict  # layer id -> (start, end) depth of that layer
    deposit_mean: float  # mean deposited fraction of E_inc
    deposit_resolution: float  # its relative spread = resolution / sqrt(E / GeV) (+ 2 % constant term)
    critical_energy_mev: float  # t_max = ln(E / E_c) + shift
    profile_shape_spread: float  # per-shower log-normal spread of the gamma shape parameter
    core_radius: float
    tail_radius: float
    core_fraction: float
    radius_growth: float  # radii scale by (1 + growth * depth)
    axis_spread: float  # per-shower displacement of the shower axis
    spots_per_sqrt_gev: float
    start_depth_mean: float = 0.0  # mean of an exponential shift of the whole profile (0: starts at the front)

    def spots(self, energy_mev: np.ndarray) -> np.ndarray:
        return np.clip(self.spots_per_sqrt_gev * np.sqrt(energy_mev / 1e3), 30, 4000).astype(np.int64)


def _uniform_depths(n_layers: int, thickness: float) -> dict:
    return {k: (k * thickness, (k + 1) * thickness) for k in range(n_layers)}


_EM_DS1 = {0: (0.0, 1.5), 1: (1.5, 6.0), 2: (6.0, 22.0), 3: (22.0, 24.0), 12: (24.0, 60.0), 13: (60.0, 90.0),
           14: (90.0, 110.0)}
_HAD_DS1 = {0: (0.0, 0.08), 1: (0.08, 0.45), 2: (0.45, 1.2), 3: (1.2, 1.3), 12: (1.3, 2.8), 13: (2.8, 6.2),
            14: (6.2, 8.0)}

# CaloGAN (docs/calogan.md section 1.1): 15 / 57.83 / 7.17 sampling cells of 2 mm Pb + 4 mm LAr per layer.
# One cell is 2/5.6 + 4/140 = 0.386 X0 (e+, gamma). Pions use 0.04 "hadronic units" per cell (the real 0.0164
# lambda_I would let almost every synthetic pion shower leak): a made-up scale giving ~18 % visible energy.
_CALOGAN_CELLS = (0.0, 15.0, 72.833, 80.0)


def _calogan_depths(per_cell: float) -> dict:
    return {k: (_CALOGAN_CELLS[k] * per_cell, _CALOGAN_CELLS[k + 1] * per_cell) for k in range(3)}


_CALOGAN_EM, _CALOGAN_HAD = _calogan_depths(0.386), _calogan_depths(0.04)

PHYSICS = {
    "1-photons": ShowerPhysics(_EM_DS1, 0.97, 0.10, 20.0, 0.10, 8.0, 40.0, 0.85, 0.06, 4.0, 90.0),
    "1-pions": ShowerPhysics(_HAD_DS1, 0.55, 0.45, 3000.0, 0.25, 30.0, 150.0, 0.6, 0.25, 12.0, 60.0),
    "2": ShowerPhysics(_uniform_depths(45, 0.6), 0.97, 0.10, 20.0, 0.10, 2.5, 10.0, 0.85, 0.08, 0.8, 120.0),
    "3": ShowerPhysics(_uniform_depths(45, 0.6), 0.97, 0.10, 20.0, 0.10, 2.5, 10.0, 0.85, 0.08, 0.8, 150.0),
    "calogan-eplus": ShowerPhysics(_CALOGAN_EM, 0.93, 0.08, 10.0, 0.10, 12.0, 45.0, 0.85, 0.05, 1.0, 60.0),
    "calogan-gamma": ShowerPhysics(_CALOGAN_EM, 0.93, 0.08, 10.0, 0.10, 12.0, 45.0, 0.85, 0.05, 1.0, 60.0,
                                   start_depth_mean=9.0 / 7.0),
    "calogan-piplus": ShowerPhysics(_CALOGAN_HAD, 0.60, 0.45, 3000.0, 0.25, 30.0, 120.0, 0.6, 1.0, 3.0, 60.0,
                                    start_depth_mean=0.35),
}

_PROFILE_RATE = 0.5  # b of the gamma profile t^(a-1) exp(-b t)


def _shower_parameters(physics: ShowerPhysics, energies: np.ndarray, rng: np.random.Generator) -> dict:
    """Per-shower deposited energy, profile shape and axis displacement."""
    spread = np.sqrt((physics.deposit_resolution / np.sqrt(energies / 1e3)) ** 2 + 0.02**2)
    deposited = energies * np.clip(physics.deposit_mean * (1.0 + spread * rng.standard_normal(len(energies))),
                                   0.02, 1.3)
    t_max = np.maximum(np.log(energies / physics.critical_energy_mev) - 0.5, 0.3)
    shape = (1.0 + _PROFILE_RATE * t_max) * np.exp(physics.profile_shape_spread * rng.standard_normal(len(energies)))
    axis = physics.axis_spread * rng.standard_normal((len(energies), 2))
    start = np.zeros(len(energies))
    if physics.start_depth_mean > 0:  # drawn only then, so the other datasets' random streams are unchanged
        start = rng.exponential(physics.start_depth_mean, len(energies))
    return dict(deposited=deposited, shape=shape, axis=axis, start=start)


def _spots(physics: ShowerPhysics, params: dict, energies: np.ndarray, rng: np.random.Generator) -> dict:
    """All spots of a chunk of showers: owner, depth, x, y, energy."""
    counts = physics.spots(energies)
    owner = np.repeat(np.arange(len(energies)), counts)
    weights = rng.gamma(2.0, 1.0, size=len(owner))
    weight_sums = np.bincount(owner, weights, minlength=len(energies))
    energy = weights / weight_sums[owner] * params["deposited"][owner]
    depth = rng.gamma(params["shape"][owner], 1.0 / _PROFILE_RATE)
    growth = 1.0 + physics.radius_growth * depth
    depth = depth + params["start"][owner]
    radius_scale = np.where(rng.random(len(owner)) < physics.core_fraction, physics.core_radius, physics.tail_radius)
    u = rng.random(len(owner))
    radius = radius_scale * growth * np.sqrt(u / (1.0 - u))
    phi = rng.uniform(-np.pi, np.pi, len(owner))
    x = radius * np.cos(phi) + params["axis"][owner, 0]
    y = radius * np.sin(phi) + params["axis"][owner, 1]
    return dict(owner=owner, depth=depth, x=x, y=y, energy=energy)


def _bin_spots(geometry: Geometry, physics: ShowerPhysics, spots: dict, n_showers: int) -> np.ndarray:
    """Sums spot energies into the voxels of `geometry`; leaked spots are dropped."""
    showers = np.zeros(n_showers * geometry.n_voxels, np.float64)
    for layer in geometry.layers:
        start, end = physics.layer_depth_edges[layer.id]
        in_depth = np.flatnonzero((spots["depth"] >= start) & (spots["depth"] < end))
        index = layer.voxel_index(spots["x"][in_depth], spots["y"][in_depth])
        kept = in_depth[index >= 0]
        flat = spots["owner"][kept] * geometry.n_voxels + layer.offset + index[index >= 0]
        showers += np.bincount(flat, spots["energy"][kept], minlength=len(showers))
    return showers.reshape(n_showers, geometry.n_voxels)


def synthesize_showers(dataset: str, incident_energies, seed: int = 0, chunk: int = 2000) -> np.ndarray:
    """Synthetic showers (N, n_voxels) float32 in MeV for incident energies (N,) or (N, 1) in MeV.

    Example:
        >>> synthesize_showers("1-photons", [65536.0, 1024.0], seed=0).shape
        (2, 368)
    """
    geometry, physics = load_geometry(dataset), PHYSICS[dataset]
    energies = np.asarray(incident_energies, np.float64).reshape(-1)
    rng = np.random.default_rng(seed)
    parts = []
    for start in range(0, len(energies), chunk):
        block = energies[start : start + chunk]
        params = _shower_parameters(physics, block, rng)
        parts.append(_bin_spots(geometry, physics, _spots(physics, params, block, rng), len(block)).astype(np.float32))
    return np.concatenate(parts) if parts else np.zeros((0, geometry.n_voxels), np.float32)


def synthetic_dataset(dataset: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(incident energies (n, 1) MeV, synthetic showers (n, V) MeV) following the dataset's energy spectrum."""
    energies = sample_incident_energies(dataset, n, seed)
    return energies, synthesize_showers(dataset, energies, seed + 1)
