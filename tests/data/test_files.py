"""Tests of calozoo.data.files: validated reading, atomic writing, the seeded split."""

import h5py
import numpy as np
import pytest

from calozoo.data.files import (
    ShowerWriter,
    read_incident_energies,
    read_showers,
    train_validation_split,
    validate_showers,
    write_showers,
)
from calozoo.errors import ShowerFileError

N_VOXELS = 368


def showers_and_energies(n=50, seed=0):
    rng = np.random.default_rng(seed)
    energies = 2.0 ** rng.integers(8, 23, size=(n, 1))
    showers = rng.exponential(5.0, size=(n, N_VOXELS)) * (rng.random((n, N_VOXELS)) < 0.3)
    return energies.astype(np.float64), showers.astype(np.float32)


def write_raw(path, **datasets):
    with h5py.File(path, "w") as handle:
        for key, value in datasets.items():
            handle.create_dataset(key, data=value)


def one_line_error(error):
    return "\n" not in str(error.value)


def test_round_trip_is_exact(tmp_path):
    energies, showers = showers_and_energies()
    path = tmp_path / "showers.h5"
    write_showers(path, energies, showers, attrs={"source": "test"})
    read_energies, read_voxels = read_showers(path, n_voxels=N_VOXELS)
    np.testing.assert_array_equal(read_energies, energies)
    np.testing.assert_array_equal(read_voxels, showers)
    assert read_energies.dtype == np.float64 and read_voxels.dtype == np.float32
    np.testing.assert_array_equal(read_incident_energies(path), energies)
    with h5py.File(path) as handle:
        assert handle.attrs["source"] == "test"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["showers.h5"]


def test_row_range(tmp_path):
    energies, showers = showers_and_energies()
    write_showers(tmp_path / "s.h5", energies, showers)
    part_energies, part_showers = read_showers(tmp_path / "s.h5", start=10, stop=20)
    np.testing.assert_array_equal(part_energies, energies[10:20])
    np.testing.assert_array_equal(part_showers, showers[10:20])


def test_writer_appends_in_chunks(tmp_path):
    energies, showers = showers_and_energies(30)
    with ShowerWriter(tmp_path / "s.h5", N_VOXELS) as writer:
        for start in range(0, 30, 7):
            writer.append(energies[start : start + 7, 0], showers[start : start + 7])
    assert writer.rows == 30
    np.testing.assert_array_equal(read_showers(tmp_path / "s.h5")[1], showers)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_file_is_one_line_shower_file_error(tmp_path, keep):
    energies, showers = showers_and_energies(200)
    path = tmp_path / "s.h5"
    write_showers(path, energies, showers)
    data = path.read_bytes()
    path.write_bytes(data[: int(keep * len(data))])
    with pytest.raises(ShowerFileError, match="truncated or corrupt") as error:
        read_showers(path)
    assert one_line_error(error)


def test_not_hdf5_and_missing_file(tmp_path):
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(ShowerFileError, match="not a readable HDF5 file"):
        read_showers(tmp_path / "text.h5")
    with pytest.raises(ShowerFileError, match="no such file"):
        read_showers(tmp_path / "absent.h5")


def test_missing_key_names_the_expected_keys(tmp_path):
    energies, showers = showers_and_energies()
    write_raw(tmp_path / "s.h5", incident_energies=energies, voxels=showers)
    with pytest.raises(ShowerFileError, match=r"missing dataset 'showers' \(found \['incident_energies', 'voxels'\]\)"):
        read_showers(tmp_path / "s.h5")


def test_wrong_voxel_count(tmp_path):
    energies, showers = showers_and_energies()
    write_showers(tmp_path / "s.h5", energies, showers)
    with pytest.raises(ShowerFileError, match=r"showers have shape \(50, 368\); expected \(N, 533\)"):
        read_showers(tmp_path / "s.h5", n_voxels=533)
    with pytest.raises(ShowerFileError, match="367 voxels per shower; this model/dataset needs 368"):
        validate_showers(showers[:, :-1], N_VOXELS)


def test_mismatched_row_counts(tmp_path):
    energies, showers = showers_and_energies()
    write_raw(tmp_path / "s.h5", incident_energies=energies[:-1], showers=showers)
    with pytest.raises(ShowerFileError, match="49 incident energies but 50 showers"):
        read_showers(tmp_path / "s.h5")


@pytest.mark.parametrize("bad_value, message", [(np.nan, "NaN or infinite"), (-1.0, "negative")])
def test_nan_or_negative_voxels(tmp_path, bad_value, message):
    energies, showers = showers_and_energies()
    showers[3, 7] = bad_value
    write_raw(tmp_path / "s.h5", incident_energies=energies, showers=showers)
    with pytest.raises(ShowerFileError, match=f"1 voxel value\\(s\\) are {message}"):
        read_showers(tmp_path / "s.h5")
    assert read_showers(tmp_path / "s.h5", validate=False)[1].shape == showers.shape


@pytest.mark.parametrize("bad_energy", [0.0, -5.0, np.nan])
def test_non_positive_energies(tmp_path, bad_energy):
    energies, showers = showers_and_energies()
    energies[4, 0] = bad_energy
    write_raw(tmp_path / "s.h5", incident_energies=energies, showers=showers)
    with pytest.raises(ShowerFileError, match=r"1 value\(s\) are NaN, infinite or <= 0 \(first at row 4"):
        read_showers(tmp_path / "s.h5")
    with pytest.raises(ShowerFileError, match="<= 0"):
        read_incident_energies(tmp_path / "s.h5")


def test_writer_that_raises_leaves_no_file(tmp_path):
    energies, showers = showers_and_energies()
    with pytest.raises(RuntimeError, match="boom"):
        with ShowerWriter(tmp_path / "s.h5", N_VOXELS) as writer:
            writer.append(energies, showers)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_bad_rows_and_leaves_no_file(tmp_path):
    energies, showers = showers_and_energies()
    showers[0, 0] = -1.0
    with pytest.raises(ShowerFileError, match="negative"):
        write_showers(tmp_path / "s.h5", energies, showers)
    assert list(tmp_path.iterdir()) == []


def test_split_is_disjoint_complete_and_seeded():
    train, validation = train_validation_split(1000, 0.3, seed=0)
    assert len(validation) == 300 and len(train) == 700
    assert np.intersect1d(train, validation).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, validation])), np.arange(1000))
    np.testing.assert_array_equal(train_validation_split(1000, 0.3, seed=0)[1], validation)
    assert not np.array_equal(train_validation_split(1000, 0.3, seed=1)[1], validation)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2])
def test_split_fraction_out_of_range(fraction):
    with pytest.raises(ValueError, match=r"`validation_fraction` must be in \(0, 1\)"):
        train_validation_split(10, fraction)
