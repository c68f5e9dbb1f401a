"""Showers streamed from several files: rows by global index, blocks, seeded tf.data batches."""

import numpy as np
import pytest
import tensorflow as tf

import calozoo.data.stream as stream
from calozoo.data.files import read_showers, write_showers
from calozoo.data.stream import ShowerBatches, ShowerFiles, ShowerRows
from calozoo.errors import ShowerFileError

V = 6


def _files(tmp_path, counts=(13, 9), seed=0):
    """Files of `counts` rows whose showers encode their global row (every voxel = row + 1 + voxel / 10)."""
    paths, start = [], 0
    for index, count in enumerate(counts):
        rows = np.arange(start, start + count)
        showers = (rows[:, None] + 1 + np.arange(V)[None] / 10).astype(np.float32)
        path = tmp_path / f"part{index}.h5"
        write_showers(path, 100.0 + rows, showers)
        paths.append(path)
        start += count
    return paths


def test_rows_of_several_files_read_as_one_in_blocks_that_stay_in_one_file(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "BLOCK_BYTES", 4 * V * 4)  # 4 rows per block
    files = ShowerFiles(_files(tmp_path))
    assert len(files) == 22 and files.n_voxels == V and files.block_rows == 4
    rows = np.array([0, 3, 4, 11, 12, 13, 16, 21])
    blocks = files.blocks(rows)
    assert [b.tolist() for b in blocks] == [[0, 3], [4], [11], [12], [13, 16], [21]]  # 12 | 13 is the file boundary
    energies, showers = ShowerRows(files, rows).read_all()
    np.testing.assert_array_equal(showers[:, 0], rows + 1)
    np.testing.assert_array_equal(energies[:, 0], 100.0 + rows)
    np.testing.assert_array_equal(files.incident_energies()[:, 0], 100.0 + np.arange(22))


def test_a_file_with_another_voxel_count_is_refused(tmp_path):
    paths = _files(tmp_path)
    write_showers(tmp_path / "wide.h5", [100.0], np.ones((1, V + 1), np.float32))
    with pytest.raises(ShowerFileError, match=r"wide.h5: showers have shape \(1, 7\); expected \(N, 6\)"):
        ShowerFiles(paths + [tmp_path / "wide.h5"])


def _epoch(batches, seed, epoch, batch_size=5):
    return [b[0].numpy()[:, 0] for b in batches.batches(batch_size, seed, epoch)]


def _identity(energies, showers):
    return (showers,)


def test_streamed_batches_are_seeded_shuffled_and_cover_every_row_once(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "BLOCK_BYTES", 3 * V * 4)
    monkeypatch.setattr(stream, "SHUFFLE_BYTES", 4 * V * 4)  # a 4-row buffer: the order depends on its seed
    rows = np.array([0, 1, 2, 4, 5, 7, 8, 9, 12, 13, 15, 17, 20, 21])
    batches = ShowerBatches(ShowerRows(ShowerFiles(_files(tmp_path)), rows), _identity)
    assert batches.n_rows == 14 and batches.shuffle_rows == 4
    first = _epoch(batches, seed=3, epoch=0)
    assert [len(b) for b in first] == [5, 5, 4]
    np.testing.assert_array_equal(np.sort(np.concatenate(first)), rows + 1)
    for again, batch in zip(_epoch(batches, seed=3, epoch=0), first):
        np.testing.assert_array_equal(again, batch)
    assert not np.array_equal(np.concatenate(_epoch(batches, seed=3, epoch=1)), np.concatenate(first))
    assert not np.array_equal(np.concatenate(_epoch(batches, seed=4, epoch=0)), np.concatenate(first))
    assert not np.array_equal(np.concatenate(first), rows + 1)


def _twice(energies, showers):
    return (tf.repeat(showers, 2, axis=0),)


def test_each_shower_can_expand_into_several_rows(tmp_path):
    rows = np.arange(0, 22, 2)
    batches = ShowerBatches(ShowerRows(ShowerFiles(_files(tmp_path)), rows), _twice, rows_per_shower=2)
    assert batches.n_rows == 22
    np.testing.assert_array_equal(np.sort(np.concatenate(_epoch(batches, seed=0, epoch=0))), np.repeat(rows + 1, 2))


def test_the_split_of_several_files_is_that_of_their_concatenation(tmp_path):
    from calozoo.workflow.recipe import _read_rows, heldout_rows

    paths = _files(tmp_path)
    together = tmp_path / "together.h5"
    energies, showers = (np.concatenate(parts) for parts in zip(*(read_showers(p) for p in paths)))
    write_showers(together, energies, showers)
    _, held = heldout_rows(22, 0.25, 0)
    from_parts, from_one = _read_rows(paths, held, V), _read_rows([together], held, V)
    np.testing.assert_array_equal(from_parts[1], from_one[1])
    np.testing.assert_array_equal(from_parts[1], read_showers(together)[1][held])
