"""Small synthetic CaloChallenge samples and the optional real GEANT4 file for the evaluation tests."""


import numpy as np
import pytest

from calozoo.data.geometry import load_geometry
from tests._paths import DS2_GEANT4  # noqa: E402


def synthetic_showers(dataset: str, n: int, seed: int, scale: float = 1.0):
    """(energies (n, 1) MeV, showers (n, V) MeV): sparse exponential voxels whose total is ~ E_inc * scale."""
    rng = np.random.default_rng(seed)
    geometry = load_geometry(dataset)
    if dataset.startswith("1-"):
        energies = 2.0 ** rng.integers(8, 23, size=(n, 1))
    else:
        energies = 10.0 ** rng.uniform(3, 5, size=(n, 1))
    raw = rng.exponential(1.0, size=(n, geometry.n_voxels)) * (rng.random((n, geometry.n_voxels)) < 0.3)
    showers = raw / raw.sum(axis=1, keepdims=True) * energies * scale * rng.normal(1.0, 0.05, size=(n, 1))
    return energies, showers.astype(np.float32)


def ds2_geant4_halves(n: int):
    """Two disjoint samples of n real DS2 GEANT4 showers each, or skip the test if the file is absent."""
    if not DS2_GEANT4.is_file():
        pytest.skip(f"{DS2_GEANT4} is not on this machine")
    from calozoo.data.files import read_showers

    energies, showers = read_showers(DS2_GEANT4, stop=2 * n)
    return (energies[:n], showers[:n]), (energies[n:], showers[n:])
