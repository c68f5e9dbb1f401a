"""Shower files in the CaloChallenge format: validated reading, atomic and streamed writing.

A file holds `incident_energies` (N, 1) MeV and `showers` (N, n_voxels) MeV, gzip-compressed and chunked.
`read_showers` and `read_incident_energies` also read CaloGAN files (calozoo.data.calogan), converted to that form.
Writers fill a temporary file next to the target and rename it at the end, so a crash or a bad input
never leaves a half-written file under the target name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

from calozoo.data import calogan
from calozoo.data.hdf5 import ENERGY_KEY, SHOWER_KEY, dataset, open_hdf5, validate_incident_energies, validate_showers
from calozoo.errors import ShowerFileError

__all__ = [
    "open_hdf5",
    "ShowerWriter",
    "read_showers",
    "read_incident_energies",
    "write_showers",
    "validate_incident_energies",
    "validate_showers",
    "train_validation_split",
]

def _calogan_reader(path):
    """calozoo.data.calogan if `path` is a CaloGAN file, else None."""
    return calogan if calogan.is_calogan_file(path) else None


def read_incident_energies(path) -> np.ndarray:
    """The validated `incident_energies` (N, 1) MeV of a shower file (CaloChallenge or CaloGAN format)."""
    calogan = _calogan_reader(path)
    if calogan is not None:
        return calogan.read_calogan(path)[0]
    with open_hdf5(path) as handle:
        try:
            energies = dataset(handle, ENERGY_KEY, path)[()]
        except OSError as error:
            raise ShowerFileError(f"{path}: cannot read '{ENERGY_KEY}' (truncated or corrupt?): {error}") from None
    return validate_incident_energies(energies, f"{path}: {ENERGY_KEY}")


def read_showers(path, n_voxels: int | None = None, start: int = 0, stop: int | None = None,
                 validate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(incident energies (N, 1) float64, showers (N, V) float32), rows [start, stop), both in MeV.

    CaloGAN files (`energy` in GeV, `layer_0/1/2`) are read too and returned in this form (V = 504).

    Args:
        n_voxels: if given, the voxel count the file must have.
        validate: check for NaN / negative / non-positive values (one clear ShowerFileError each).
    """
    calogan = _calogan_reader(path)
    if calogan is not None:
        energies, showers = calogan.read_calogan(path, start, stop)
        if n_voxels is not None and showers.shape[1] != n_voxels:
            raise ShowerFileError(f"{path}: a CaloGAN file has {showers.shape[1]} voxels per shower; "
                                  f"expected {n_voxels}.")
        return energies, showers
    with open_hdf5(path) as handle:
        energies_ds, showers_ds = dataset(handle, ENERGY_KEY, path), dataset(handle, SHOWER_KEY, path)
        if energies_ds.shape[0] != showers_ds.shape[0]:
            raise ShowerFileError(f"{path}: {energies_ds.shape[0]} incident energies but "
                                  f"{showers_ds.shape[0]} showers.")
        if n_voxels is not None and (len(showers_ds.shape) != 2 or showers_ds.shape[1] != n_voxels):
            raise ShowerFileError(f"{path}: showers have shape {showers_ds.shape}; expected (N, {n_voxels}).")
        try:
            energies = energies_ds[start:stop]
            showers = showers_ds[start:stop]
        except OSError as error:
            raise ShowerFileError(f"{path}: cannot read the data (truncated or corrupt?): {error}") from None
    energies = np.asarray(energies, np.float64).reshape(-1, 1)
    if validate:
        energies = validate_incident_energies(energies, f"{path}: {ENERGY_KEY}")
        showers = validate_showers(showers, n_voxels, f"{path}: {SHOWER_KEY}")
    return energies, np.asarray(showers, np.float32)


class ShowerWriter:
    """Streams showers into a CaloChallenge file: chunks are appended to a temporary file that is renamed
    onto `path` only when the `with` block ends without error (otherwise it is deleted).

    Example:
        >>> with ShowerWriter("out.h5", n_voxels=368) as writer:      # doctest: +SKIP
        ...     writer.append(energies, showers)
    """

    def __init__(self, path, n_voxels: int, attrs: dict | None = None, chunk_rows: int = 1000):
        self.path, self.n_voxels, self.attrs, self.chunk_rows = Path(path), int(n_voxels), attrs or {}, chunk_rows
        self.rows = 0
        self._handle = None
        self._tmp = None

    def __enter__(self) -> "ShowerWriter":
        directory = self.path.resolve().parent
        if not directory.is_dir():
            raise ShowerFileError(f"{self.path}: the directory {directory} does not exist.")
        with self._errors_name_the_output("cannot create it"):
            fd, self._tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
            os.close(fd)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp creates 0600; a finished file gets the usual permissions
            self._handle = h5py.File(self._tmp, "w")
            self._create_datasets()
        return self

    def _create_datasets(self) -> None:
        chunk = min(self.chunk_rows, max(1, 4_000_000 // max(1, self.n_voxels)))
        self._energies = self._handle.create_dataset(ENERGY_KEY, (0, 1), maxshape=(None, 1), dtype="f8",
                                                     chunks=(max(chunk, 1024), 1), compression="gzip")
        self._showers = self._handle.create_dataset(SHOWER_KEY, (0, self.n_voxels), maxshape=(None, self.n_voxels),
                                                    dtype="f4", chunks=(chunk, self.n_voxels), compression="gzip")
        for key, value in self.attrs.items():
            self._handle.attrs[key] = value

    @contextlib.contextmanager
    def _errors_name_the_output(self, what: str):
        """OSErrors (disk full, permissions) as one ShowerFileError that names the output, not the temporary file."""
        try:
            yield
        except OSError as error:
            reason = error.strerror or str(error).replace(str(self._tmp), str(self.path))
            raise ShowerFileError(f"{self.path}: {what}: {reason}.") from None

    def append(self, energies, showers) -> None:
        """Adds rows; energies (n,) or (n, 1) MeV and showers (n, n_voxels) MeV."""
        energies = validate_incident_energies(energies)
        showers = validate_showers(showers, self.n_voxels)
        if len(energies) != len(showers):
            raise ShowerFileError(f"append: {len(energies)} incident energies but {len(showers)} showers.")
        n = self.rows + len(energies)
        with self._errors_name_the_output("writing failed"):
            self._energies.resize(n, axis=0)
            self._showers.resize(n, axis=0)
            self._energies[self.rows : n] = energies
            self._showers[self.rows : n] = showers
            self._handle.flush()
        self.rows = n

    def __exit__(self, exc_type, exc, tb) -> None:
        """Renames the finished file onto the output; on any exception (Ctrl-C and, under the `calozoo` command,
        SIGTERM included) removes the temporary file instead."""
        try:
            with self._errors_name_the_output("writing failed"):
                self._handle.close()
                if exc_type is None:
                    os.replace(self._tmp, self.path)
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)


def write_showers(path, energies, showers, attrs: dict | None = None) -> None:
    """Writes a whole CaloChallenge file atomically (temporary name, then rename)."""
    showers = np.asarray(showers)
    with ShowerWriter(path, showers.shape[1], attrs) as writer:
        writer.append(energies, showers)


def train_validation_split(n: int, validation_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted (train, validation) row indices of a seeded random split."""
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"`validation_fraction` must be in (0, 1); got {validation_fraction}.")
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(validation_fraction * n))
    return np.sort(order[n_val:]), np.sort(order[:n_val])
