"""Incident-energy spectra of the CaloChallenge datasets (MeV)."""

from __future__ import annotations

import numpy as np

__all__ = ["DS1_ENERGIES", "ds1_energy_list", "sample_incident_energies"]

# Dataset 1: 15 discrete energies 2^8 .. 2^22 MeV (256 MeV .. 4.19 TeV).
DS1_ENERGIES = 2.0 ** np.arange(8, 23)

# Events per energy in dataset_1_{photons,pions}_1.hdf5 (docs/datasets.md section 3): 10 000 each up to 2^18,
# then fewer.
_DS1_COUNTS = {
    "photon": [10_000] * 11 + [5_000, 3_000, 2_000, 1_000],  # 121 000
    "pion": [10_000] * 10 + [9_800, 5_000, 3_000, 2_000, 1_000],  # 120 800
}


def ds1_energy_list(particle: str) -> np.ndarray:
    """Every incident energy of dataset_1_<particle>s_1, in file composition (not shuffled), MeV."""
    if particle not in _DS1_COUNTS:
        raise ValueError(f"`particle` must be 'photon' or 'pion'; got '{particle}'.")
    return np.repeat(DS1_ENERGIES, _DS1_COUNTS[particle]).astype(np.float64)


def sample_incident_energies(dataset: str, n: int, seed: int = 0) -> np.ndarray:
    """n incident energies (n, 1) MeV following a dataset's spectrum.

    DS1: the 15 discrete energies with the composition of the challenge file; DS2/DS3: log-uniform
    in [1 GeV, 1 TeV]; 'calogan-*': uniform in [1, 100] GeV.
    """
    if n < 0:
        raise ValueError(f"`n` must be >= 0; got {n}.")
    rng = np.random.default_rng(seed)
    if dataset in ("1-photons", "1-pions"):
        counts = np.asarray(_DS1_COUNTS["photon" if dataset == "1-photons" else "pion"], np.float64)
        return rng.choice(DS1_ENERGIES, size=(n, 1), p=counts / counts.sum())
    if dataset in ("2", "3"):
        return 10.0 ** rng.uniform(3.0, 6.0, size=(n, 1))
    if dataset.startswith("calogan"):
        return rng.uniform(1e3, 1e5, size=(n, 1))
    raise ValueError(f"Unknown dataset '{dataset}'; expected '1-photons', '1-pions', '2', '3' or 'calogan-*'.")
