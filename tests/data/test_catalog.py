"""Tests of calozoo.data.catalog: names, URLs, the published MD5s and the unknown-name error."""

import re

import pytest

from calozoo.data.catalog import CATALOG, DatasetFile, get_dataset, list_datasets
from calozoo.data.geometry import DATASET_NAMES
from calozoo.errors import UnknownDatasetError


def test_all_ten_files_in_natural_order():
    assert list_datasets() == ["ds1-photons-1", "ds1-photons-2", "ds1-pions-1", "ds1-pions-2",
                               "ds2-1", "ds2-2", "ds3-1", "ds3-2", "ds3-3", "ds3-4"]
    assert list_datasets("ds3-*") == ["ds3-1", "ds3-2", "ds3-3", "ds3-4"]
    assert list_datasets("ds4-*") == []


@pytest.mark.parametrize("name, filename, record", [
    ("ds1-photons-1", "dataset_1_photons_1.hdf5", "8099322"),
    ("ds1-pions-2", "dataset_1_pions_2.hdf5", "8099322"),
    ("ds2-2", "dataset_2_2.hdf5", "6366271"),
    ("ds3-4", "dataset_3_4.hdf5", "6366324"),
])
def test_zenodo_urls(name, filename, record):
    entry = get_dataset(name)
    assert (entry.filename, entry.record) == (filename, record)
    assert entry.url == f"https://zenodo.org/records/{record}/files/{filename}?download=1"


def test_published_md5s_of_the_reference_notes():
    assert get_dataset("ds1-photons-1").md5 == "005d2adeda7db034b388112661265656"
    assert get_dataset("ds1-photons-2").md5 == "4767715ed56e99565fd9c67340661e70"
    assert get_dataset("ds1-pions-1").md5 == "6a5f52722064a1bcd8a0bc002f16515d"
    assert get_dataset("ds1-pions-2").md5 == "fee7457b40127bc23c8ab909e2638ca0"
    assert get_dataset("ds2-1").md5 == "e590333e9a2da51b258288d74bd8357a"
    assert get_dataset("ds3-3").md5 == "5ea62f6831a1821bb5035fafc9f030e8"


def test_every_entry_is_consistent():
    md5s = [entry.md5 for entry in CATALOG.values()]
    assert len(set(md5s)) == len(md5s)
    for name, entry in CATALOG.items():
        assert entry.name == name
        assert entry.geometry in DATASET_NAMES
        assert entry.role in ("train", "reference")
        assert re.fullmatch(r"dataset_\d(_\w+)?_\d\.hdf5", entry.filename)


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownDatasetError, match=r"Unknown dataset 'ds2_1'\. Did you mean 'ds2-1'.*calozoo data list"):
        get_dataset("ds2_1")
    with pytest.raises(UnknownDatasetError, match=r"Unknown dataset 'zzz'\. Run `calozoo data list`"):
        get_dataset("zzz")


def test_malformed_md5_is_refused():
    with pytest.raises(ValueError, match="`md5` of 'x' must be 32 lowercase hex digits or None; got 'ABC'"):
        DatasetFile("x", "x.hdf5", "1", "ABC", "2", "train")
