"""Shower files too large for memory: several CaloChallenge files read as one, by row index, in blocks, and
seeded tf.data pipelines of training rows over them.

Global row r of `ShowerFiles([a, b])` is row r of `a` if r < len(a), else row r - len(a) of `b` (the files'
rows one after the other, in the order given). Rows are read in blocks of about `BLOCK_BYTES` of showers: one
contiguous slice of one file per block, of which the wanted rows are kept. Every block is validated as it is read
(the checks of `read_showers`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from calozoo.data.hdf5 import ENERGY_KEY, SHOWER_KEY, dataset, open_hdf5, validate_incident_energies, validate_showers
from calozoo.errors import ShowerFileError

__all__ = ["BLOCK_BYTES", "SHUFFLE_BYTES", "ShowerFiles", "ShowerRows", "ShowerBatches"]

BLOCK_BYTES = 32 * 2**20  # float32 showers read per block
SHUFFLE_BYTES = 256 * 2**20  # rows held in a pipeline's shuffle buffer


class ShowerFiles:
    """CaloChallenge shower files read as one sequence of rows; opens each file once and keeps it open.

    Args:
        paths: one or several files; every one must have `n_voxels` voxels (default: those of the first).

    Raises:
        ShowerFileError: a missing or unreadable file, missing datasets, or mismatched shapes.
    """

    def __init__(self, paths: Sequence, n_voxels: int | None = None):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ShowerFileError("no shower file given.")
        counts = []
        for path in self.paths:
            with open_hdf5(path) as handle:
                energies, showers = dataset(handle, ENERGY_KEY, path), dataset(handle, SHOWER_KEY, path)
                if energies.shape[0] != showers.shape[0]:
                    raise ShowerFileError(f"{path}: {energies.shape[0]} incident energies but {showers.shape[0]} "
                                          "showers.")
                n_voxels = showers.shape[1] if n_voxels is None and len(showers.shape) == 2 else n_voxels
                if len(showers.shape) != 2 or showers.shape[1] != n_voxels:
                    raise ShowerFileError(f"{path}: showers have shape {showers.shape}; expected (N, {n_voxels}).")
                counts.append(int(showers.shape[0]))
        self.n_voxels = int(n_voxels)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.block_rows = max(1, BLOCK_BYTES // (4 * self.n_voxels))
        self._handles: dict[int, object] = {}
        self._energies = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shower_bytes(self) -> int:
        """The size of every shower as float32, the memory an in-memory read would need at least."""
        return len(self) * self.n_voxels * 4

    def incident_energies(self) -> np.ndarray:
        """Every file's validated incident energies (N, 1) MeV, one after the other (read once, then kept)."""
        if self._energies is None:
            self._energies = np.concatenate([self._read(index, slice(None))[0] for index in range(len(self.paths))])
        return self._energies

    def blocks(self, rows: np.ndarray) -> list[np.ndarray]:
        """Sorted global `rows` cut into blocks: each block's rows lie in one file, at most `block_rows` apart."""
        rows = np.asarray(rows, np.int64)
        files = np.searchsorted(self.offsets, rows, side="right") - 1
        keys = files * (len(self) + 1) + (rows - self.offsets[files]) // self.block_rows
        cuts = np.flatnonzero(np.diff(keys)) + 1
        return np.split(rows, cuts) if len(rows) else []

    def read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(incident energies (n, 1) float64, showers (n, V) float32) MeV of one block of `blocks`."""
        index = int(np.searchsorted(self.offsets, rows[0], side="right") - 1)
        local = np.asarray(rows, np.int64) - self.offsets[index]
        energies, showers = self._read(index, slice(int(local[0]), int(local[-1]) + 1), showers=True)
        keep = local - local[0]
        return energies[keep], showers[keep]

    def _read(self, index: int, rows: slice, showers: bool = False):
        path = self.paths[index]
        if index not in self._handles:
            self._handles[index] = open_hdf5(path)
        handle = self._handles[index]
        try:
            energies = validate_incident_energies(handle[ENERGY_KEY][rows], f"{path}: {ENERGY_KEY}")
            block = validate_showers(handle[SHOWER_KEY][rows], self.n_voxels, f"{path}: {SHOWER_KEY}") if showers \
                else None
        except OSError as error:
            raise ShowerFileError(f"{path}: cannot read the data (truncated or corrupt?): {error}") from None
        return energies, block

    def close(self) -> None:
        """Closes the open files (they reopen on the next read)."""
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()


@dataclasses.dataclass(frozen=True, eq=False)
class ShowerRows:
    """A subset of the rows of `ShowerFiles` (sorted global indices), read on demand."""

    files: ShowerFiles
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, positions) -> "ShowerRows":
        """The rows at `positions` of this subset (in any order; the result is sorted)."""
        return ShowerRows(self.files, np.sort(self.rows[np.asarray(positions, np.int64)]))

    def incident_energies(self) -> np.ndarray:
        """(n, 1) MeV of these rows."""
        return self.files.incident_energies()[self.rows]

    def blocks(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(position of the block's first row in this subset, energies, showers) per block, in row order."""
        position = 0
        for block in self.files.blocks(self.rows):
            yield (position, *self.files.read(block))
            position += len(block)

    def read_all(self) -> tuple[np.ndarray, np.ndarray]:
        """(energies, showers) of every row in memory (for subsets that fit)."""
        blocks = [(e, s) for _, e, s in self.blocks()]
        if not blocks:
            return np.zeros((0, 1)), np.zeros((0, self.files.n_voxels), np.float32)
        return np.concatenate([e for e, _ in blocks]), np.concatenate([s for _, s in blocks])


class ShowerBatches:
    """Seeded training batches of rows built from showers on disk, as a tf.data pipeline.

    Per epoch: the blocks of `showers` in a seeded random order, each read (`tf.numpy_function`) and turned by
    `expand(energies (b, 1) float64, showers (b, V) float32)` into a tuple of tensors with `rows_per_shower * b`
    rows (graph ops), the rows mixed in a seeded shuffle buffer of about `SHUFFLE_BYTES`, batched, prefetched.
    The same (seed, epoch) gives the same batches. `train_loop` takes it in place of in-memory arrays.
    """

    def __init__(self, showers: ShowerRows, expand: Callable, rows_per_shower: int = 1, row_bytes: int | None = None):
        self.showers, self.expand, self.rows_per_shower = showers, expand, int(rows_per_shower)
        row_bytes = row_bytes or 4 * showers.files.n_voxels // self.rows_per_shower
        self.shuffle_rows = max(1, SHUFFLE_BYTES // max(1, row_bytes))

    @property
    def n_rows(self) -> int:
        """Rows per epoch."""
        return len(self.showers) * self.rows_per_shower

    def batches(self, batch_size: int, seed: int, epoch: int) -> tf.data.Dataset:
        """The epoch's batches: tuples of tensors, the last batch possibly short."""
        files = self.showers.files
        blocks = files.blocks(self.showers.rows)
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(blocks)).astype(np.int64)

        def read(index):
            return files.read(blocks[int(index)])

        def read_block(index):
            energies, showers = tf.numpy_function(read, [index], (tf.float64, tf.float32))
            return self.expand(tf.ensure_shape(energies, [None, 1]), tf.ensure_shape(showers, [None, files.n_voxels]))

        dataset = tf.data.Dataset.from_tensor_slices(order).map(read_block)
        return (dataset.unbatch().shuffle(self.shuffle_rows, seed=int(rng.integers(2**31 - 1)))
                .batch(batch_size).prefetch(2))
