"""Tests of the `calozoo data` command group: list, fetch (against a local server) and split."""

import dataclasses
import hashlib

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from calozoo.data import catalog
from calozoo.data.files import read_showers, train_validation_split, write_showers
from calozoo_tools.cli import main
from tests.data.http_server import FileServer

PAYLOAD = b"calozoo test file\n" * 5000


def run(*args):
    return CliRunner().invoke(main, ["data", *args])


def one_error_line(result):
    """The single `Error: ...` line on stderr (a progress bar may precede it there)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 1 and len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.output
    return errors[0]


def test_list_shows_every_file_with_its_md5():
    result = run("list")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines] == catalog.list_datasets()
    assert "dataset_1_photons_1.hdf5" in lines[0] and "005d2adeda7db034b388112661265656" in lines[0]


def test_list_pattern_without_match_is_an_error():
    assert "No dataset matches 'ds9*'" in one_error_line(run("list", "ds9*"))


def test_fetch_from_a_mirror(tmp_path, monkeypatch):
    entry = catalog.get_dataset("ds2-1")
    monkeypatch.setitem(catalog.CATALOG, "ds2-1", dataclasses.replace(entry, md5=hashlib.md5(PAYLOAD).hexdigest()))
    with FileServer({entry.filename: PAYLOAD}) as server:
        result = run("fetch", "ds2-1", "--dest", str(tmp_path), "--url-base", server.url, "--quiet")
    assert result.exit_code == 0, result.output
    assert (tmp_path / entry.filename).read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == [entry.filename]


def test_fetch_with_a_wrong_checksum_is_one_line_and_leaves_nothing(tmp_path):
    with FileServer({"dataset_2_1.hdf5": PAYLOAD}) as server:
        line = one_error_line(run("fetch", "ds2-1", "--dest", str(tmp_path), "--url-base", server.url, "--quiet"))
    assert "is not the published e590333e9a2da51b258288d74bd8357a" in line
    assert list(tmp_path.iterdir()) == []


def test_fetch_unknown_name_is_one_line(tmp_path):
    line = one_error_line(run("fetch", "ds3_1", "--dest", str(tmp_path)))
    assert "Unknown dataset 'ds3_1'. Did you mean 'ds3-1'" in line


@pytest.fixture
def shower_file(tmp_path):
    rng = np.random.default_rng(3)
    energies = rng.uniform(1e3, 1e6, size=(101, 1))
    showers = rng.exponential(1.0, size=(101, 368)).astype(np.float32)
    energies[:, 0] += np.arange(101) * 1e-3  # every row distinct, to follow rows across files
    path = tmp_path / "all.h5"
    write_showers(path, energies, showers)
    return path, energies, showers


def split(shower_file, tmp_path, *extra):
    return run("split", str(shower_file), "--validation-fraction", "0.3", "--seed", "0",
               "--train", str(tmp_path / "train.h5"), "--validation", str(tmp_path / "val.h5"), *extra)


def test_split_is_disjoint_complete_and_seeded(shower_file, tmp_path, monkeypatch):
    path, energies, showers = shower_file
    monkeypatch.setattr("calozoo_tools.data._VALUES_PER_BLOCK", 368 * 16)  # several blocks of 16 rows
    result = split(path, tmp_path)
    assert result.exit_code == 0, result.output
    train_energies, train_showers = read_showers(tmp_path / "train.h5")
    val_energies, val_showers = read_showers(tmp_path / "val.h5")
    assert (len(train_energies), len(val_energies)) == (71, 30)
    assert np.intersect1d(train_energies, val_energies).size == 0
    rows = {float(e): i for i, e in enumerate(energies[:, 0])}
    train_rows = [rows[float(e)] for e in train_energies[:, 0]]
    val_rows = [rows[float(e)] for e in val_energies[:, 0]]
    np.testing.assert_array_equal(train_showers, showers[train_rows])
    np.testing.assert_array_equal(val_showers, showers[val_rows])
    assert sorted(train_rows + val_rows) == list(range(101))
    assert val_rows == list(train_validation_split(101, 0.3, seed=0)[1])
    with h5py.File(tmp_path / "val.h5") as handle:
        assert handle.attrs["split"] == "validation" and handle.attrs["seed"] == 0
    again = tmp_path / "again"
    again.mkdir()
    split(path, again)
    np.testing.assert_array_equal(read_showers(again / "val.h5")[0], val_energies)


def test_split_bad_fraction_is_one_line_and_writes_nothing(shower_file, tmp_path):
    path = shower_file[0]
    result = run("split", str(path), "--validation-fraction", "1.5", "--train", str(tmp_path / "t.h5"),
                 "--validation", str(tmp_path / "v.h5"))
    assert "`validation_fraction` must be in (0, 1); got 1.5" in one_error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.h5"]


def test_split_of_a_bad_file_leaves_no_output(tmp_path, monkeypatch):
    monkeypatch.setattr("calozoo_tools.data._VALUES_PER_BLOCK", 368 * 16)  # blocks of 16 rows
    rng = np.random.default_rng(0)
    showers = rng.exponential(1.0, size=(40, 368))
    showers[35, 0] = np.nan  # in the last block: the first blocks are written before the error
    with h5py.File(tmp_path / "bad.h5", "w") as handle:
        handle.create_dataset("incident_energies", data=rng.uniform(1e3, 1e6, size=(40, 1)))
        handle.create_dataset("showers", data=showers)
    result = run("split", str(tmp_path / "bad.h5"), "--train", str(tmp_path / "t.h5"),
                 "--validation", str(tmp_path / "v.h5"))
    assert "NaN or infinite" in one_error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.h5"]


def test_split_refuses_to_overwrite_its_input(shower_file, tmp_path):
    path = shower_file[0]
    result = run("split", str(path), "--train", str(path), "--validation", str(tmp_path / "v.h5"))
    assert result.exit_code != 0 and "three different paths" in result.output
