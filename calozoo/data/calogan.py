"""Shower files in the CaloGAN format (docs/calogan.md section 1.2), read and written.

A CaloGAN file holds `energy` (N, 1) in **GeV**, `layer_0` (N, 3, 96), `layer_1` (N, 12, 12), `layer_2` (N, 12, 6)
and `overflow` (N, 3), all in **MeV**. calozoo works on flat showers (N, 504) MeV with incident energies (N, 1) MeV
(the CaloChallenge convention); the functions here convert between the two. Writing is atomic (a temporary file
renamed at the end), and reading validates shapes and values with one clear `ShowerFileError` each.

Example:
    >>> energies, showers = read_calogan("eplus.hdf5")          # doctest: +SKIP
    >>> energies.shape, showers.shape                           # doctest: +SKIP
    ((100000, 1), (100000, 504))
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

from calozoo.data.geometry import load_geometry
from calozoo.data.hdf5 import open_hdf5, validate_incident_energies, validate_showers
from calozoo.errors import ShowerFileError

__all__ = ["ENERGY_KEY", "LAYER_KEYS", "OVERFLOW_KEY", "is_calogan_file", "layers_to_flat", "flat_to_layers",
           "read_calogan", "write_calogan"]

ENERGY_KEY, OVERFLOW_KEY = "energy", "overflow"
_GEOMETRY = load_geometry("calogan-eplus")  # the three CaloGAN datasets share one detector
LAYER_KEYS = tuple(f"layer_{layer.id}" for layer in _GEOMETRY.layers)
_MEV_PER_GEV = 1e3


def is_calogan_file(path) -> bool:
    """Whether `path` is an HDF5 file with CaloGAN keys (`energy` and `layer_0`)."""
    try:
        with h5py.File(path, "r") as handle:
            return ENERGY_KEY in handle and LAYER_KEYS[0] in handle
    except OSError:
        return False


def layers_to_flat(layers) -> np.ndarray:
    """Flat showers (N, 504) from the three layer arrays [(N, 3, 96), (N, 12, 12), (N, 12, 6)], row-major."""
    layers = list(layers)
    if len(layers) != len(_GEOMETRY.layers):
        raise ShowerFileError(f"layers_to_flat: expected {len(_GEOMETRY.layers)} layer arrays; got {len(layers)}.")
    blocks = []
    for key, array, layer in zip(LAYER_KEYS, layers, _GEOMETRY.layers):
        array = np.asarray(array)
        if array.ndim != 3 or array.shape[1:] != layer.shape:
            raise ShowerFileError(f"{key}: expected shape (N, {layer.shape[0]}, {layer.shape[1]}); got {array.shape}.")
        blocks.append(array.reshape(len(array), -1))
    if len({len(b) for b in blocks}) != 1:
        raise ShowerFileError(f"The layers hold different numbers of showers: {[len(b) for b in blocks]}.")
    return np.concatenate(blocks, axis=1)


def flat_to_layers(showers) -> list[np.ndarray]:
    """The three layer arrays [(N, 3, 96), (N, 12, 12), (N, 12, 6)] of flat showers (N, 504)."""
    showers = np.asarray(showers)
    if showers.ndim != 2 or showers.shape[1] != _GEOMETRY.n_voxels:
        raise ShowerFileError(f"showers: expected shape (N, {_GEOMETRY.n_voxels}) for CaloGAN; got {showers.shape}.")
    return [showers[:, layer.voxel_slice].reshape((len(showers),) + layer.shape) for layer in _GEOMETRY.layers]


def read_calogan(path, start: int = 0, stop: int | None = None, with_overflow: bool = False):
    """(incident energies (N, 1) float64 MeV, flat showers (N, 504) float32 MeV) of rows [start, stop).

    Args:
        with_overflow: also return the `overflow` array (N, 3) MeV (zeros if the file has none).
    """
    with open_hdf5(path) as handle:
        missing = [key for key in (ENERGY_KEY,) + LAYER_KEYS if key not in handle]
        if missing:
            raise ShowerFileError(f"{path}: missing dataset(s) {missing} (found {sorted(handle.keys())}); a CaloGAN "
                                  f"file has '{ENERGY_KEY}' (GeV) and {', '.join(LAYER_KEYS)} (MeV).")
        try:
            energies_gev = np.asarray(handle[ENERGY_KEY][start:stop], np.float64)
            layers = [handle[key][start:stop] for key in LAYER_KEYS]
            overflow = handle[OVERFLOW_KEY][start:stop] if OVERFLOW_KEY in handle else None
        except OSError as error:
            raise ShowerFileError(f"{path}: cannot read the data (truncated or corrupt?): {error}") from None
    showers = validate_showers(layers_to_flat(layers), _GEOMETRY.n_voxels, f"{path}: layers")
    energies = validate_incident_energies(energies_gev.reshape(-1, 1) * _MEV_PER_GEV, f"{path}: {ENERGY_KEY}")
    if len(energies) != len(showers):
        raise ShowerFileError(f"{path}: {len(energies)} energies but {len(showers)} showers.")
    if not with_overflow:
        return energies, showers
    overflow = np.zeros((len(showers), 3)) if overflow is None else np.asarray(overflow, np.float64).reshape(-1, 3)
    return energies, showers, overflow


def write_calogan(path, energies_mev, showers, overflow=None, attrs: dict | None = None) -> None:
    """Writes a CaloGAN file atomically: `energy` in GeV from incident energies in MeV, the layers in MeV.

    Args:
        energies_mev: (N,) or (N, 1) incident energies, MeV (stored as GeV, like GEANT4's CaloGAN files).
        showers: (N, 504) MeV.
        overflow: (N, 3) MeV, zeros by default (CaloFlow writes zeros too).
        attrs: file attributes, e.g. {"synthetic": True}.
    """
    energies = validate_incident_energies(energies_mev)
    showers = validate_showers(showers, _GEOMETRY.n_voxels)
    if len(energies) != len(showers):
        raise ShowerFileError(f"write_calogan: {len(energies)} incident energies but {len(showers)} showers.")
    overflow = np.zeros((len(showers), 3)) if overflow is None else np.asarray(overflow, np.float64)
    if overflow.shape != (len(showers), 3):
        raise ShowerFileError(f"write_calogan: overflow must have shape ({len(showers)}, 3); got {overflow.shape}.")
    path = Path(path)
    directory = path.resolve().parent
    if not directory.is_dir():
        raise ShowerFileError(f"{path}: the directory {directory} does not exist.")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as handle:
            handle.create_dataset(ENERGY_KEY, data=energies / _MEV_PER_GEV)
            for key, array in zip(LAYER_KEYS, flat_to_layers(showers)):
                handle.create_dataset(key, data=array, compression="gzip")
            handle.create_dataset(OVERFLOW_KEY, data=overflow)
            for key, value in (attrs or {}).items():
                handle.attrs[key] = value
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
