"""Opening shower files and validating what they hold: the checks every reader shares (CaloChallenge and CaloGAN)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from calozoo.errors import ShowerFileError

__all__ = ["ENERGY_KEY", "SHOWER_KEY", "open_hdf5", "dataset", "validate_incident_energies", "validate_showers"]

ENERGY_KEY, SHOWER_KEY = "incident_energies", "showers"


def validate_incident_energies(energies, where: str = "incident energies") -> np.ndarray:
    """Incident energies as (N, 1) float64; NaN, infinite or non-positive values raise ShowerFileError."""
    energies = np.asarray(energies, dtype=np.float64)
    if energies.ndim == 1:
        energies = energies[:, None]
    if energies.ndim != 2 or energies.shape[1] != 1:
        raise ShowerFileError(f"{where}: expected shape (N, 1); got {energies.shape}.")
    bad = ~np.isfinite(energies[:, 0]) | (energies[:, 0] <= 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ShowerFileError(f"{where}: {int(bad.sum())} value(s) are NaN, infinite or <= 0 "
                              f"(first at row {first}: {energies[first, 0]}); incident energies must be positive MeV.")
    return energies


def validate_showers(showers, n_voxels: int | None = None, where: str = "showers") -> np.ndarray:
    """Showers as (N, V) float32; a wrong voxel count, NaN, infinite or negative voxels raise ShowerFileError."""
    showers = np.asarray(showers)
    if showers.ndim != 2:
        raise ShowerFileError(f"{where}: expected shape (N, n_voxels); got {showers.shape}.")
    if n_voxels is not None and showers.shape[1] != n_voxels:
        raise ShowerFileError(f"{where}: {showers.shape[1]} voxels per shower; this model/dataset needs {n_voxels}.")
    if not np.isfinite(showers).all():
        raise ShowerFileError(f"{where}: {int((~np.isfinite(showers)).sum())} voxel value(s) are NaN or infinite.")
    if (showers < 0).any():
        raise ShowerFileError(f"{where}: {int((showers < 0).sum())} voxel value(s) are negative; "
                              "energies must be >= 0 MeV.")
    return showers.astype(np.float32, copy=False)


def open_hdf5(path) -> h5py.File:
    """An HDF5 file opened for reading, or one ShowerFileError naming the missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise ShowerFileError(f"{path}: no such file.")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise ShowerFileError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {error}") from None


def dataset(handle: h5py.File, key: str, path) -> h5py.Dataset:
    """`handle[key]`, or one ShowerFileError naming the missing dataset and the keys the file has."""
    if key not in handle:
        raise ShowerFileError(f"{path}: missing dataset '{key}' (found {sorted(handle.keys())}); "
                              f"a CaloChallenge file has '{ENERGY_KEY}' and '{SHOWER_KEY}'.")
    return handle[key]
