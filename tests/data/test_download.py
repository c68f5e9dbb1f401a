"""Tests of calozoo.data.download.fetch against a local HTTP server on 127.0.0.1."""

import dataclasses
import hashlib
import socket
import warnings

import numpy as np
import pytest

from calozoo.data.catalog import DatasetFile, get_dataset
from calozoo.data.download import DATA_URL_ENV, fetch, file_md5, resolve_url
from calozoo.errors import ChecksumError, DownloadError, UnknownDatasetError
from tests.data.http_server import FileServer

PAYLOAD = np.random.default_rng(7).integers(0, 256, size=300_000, dtype=np.uint8).tobytes()
ENTRY = DatasetFile("test-file", "test_file.hdf5", "0", hashlib.md5(PAYLOAD).hexdigest(), "1-photons", "train")


@pytest.fixture
def server():
    with FileServer({ENTRY.filename: PAYLOAD}) as running:
        yield running


def files_in(folder):
    return sorted(path.name for path in folder.iterdir())


def test_fetch_downloads_verifies_and_renames(server, tmp_path):
    path = fetch(ENTRY, tmp_path / "new", progress=False, base_url=server.url)
    assert path == tmp_path / "new" / ENTRY.filename
    assert path.read_bytes() == PAYLOAD
    assert files_in(tmp_path / "new") == [ENTRY.filename]
    assert server.range_headers == [None]


def test_base_url_from_the_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_URL_ENV, server.url + "/")
    assert resolve_url(ENTRY) == f"{server.url}/{ENTRY.filename}"
    assert fetch(ENTRY, tmp_path, progress=False).read_bytes() == PAYLOAD


def test_without_override_the_url_is_zenodo(monkeypatch):
    monkeypatch.delenv(DATA_URL_ENV, raising=False)
    assert resolve_url(get_dataset("ds2-1")) == "https://zenodo.org/records/6366271/files/dataset_2_1.hdf5?download=1"


def test_non_http_base_url_is_refused():
    with pytest.raises(ValueError, match="must start with http:// or https://"):
        resolve_url(ENTRY, "ftp://mirror/data")


def test_checksum_mismatch_raises_and_leaves_no_file(server, tmp_path):
    wrong = dataclasses.replace(ENTRY, md5="0" * 32)
    with pytest.raises(ChecksumError, match=f"MD5 {ENTRY.md5} is not the published 0{{32}}"):
        fetch(wrong, tmp_path, progress=False, base_url=server.url)
    assert files_in(tmp_path) == []


def test_catalog_name_with_a_foreign_file_fails_its_published_md5(tmp_path):
    entry = get_dataset("ds1-photons-1")
    with FileServer({entry.filename: PAYLOAD}) as mirror, pytest.raises(ChecksumError, match=entry.md5):
        fetch("ds1-photons-1", tmp_path, progress=False, base_url=mirror.url)
    assert files_in(tmp_path) == []


def test_resumes_a_partial_download_with_range(server, tmp_path):
    (tmp_path / f"{ENTRY.filename}.part").write_bytes(PAYLOAD[:120_000])
    path = fetch(ENTRY, tmp_path, progress=False, base_url=server.url)
    assert server.range_headers == ["bytes=120000-"]
    assert path.read_bytes() == PAYLOAD
    assert files_in(tmp_path) == [ENTRY.filename]


def test_restarts_from_zero_when_the_server_ignores_range(server, tmp_path):
    server.honour_range = False
    (tmp_path / f"{ENTRY.filename}.part").write_bytes(b"x" * 120_000)  # appending would corrupt the file
    path = fetch(ENTRY, tmp_path, progress=False, base_url=server.url)
    assert server.range_headers == ["bytes=120000-"]
    assert path.read_bytes() == PAYLOAD


def test_complete_part_answered_416_is_verified_and_renamed(server, tmp_path):
    (tmp_path / f"{ENTRY.filename}.part").write_bytes(PAYLOAD)
    path = fetch(ENTRY, tmp_path, progress=False, base_url=server.url)
    assert server.range_headers == [f"bytes={len(PAYLOAD)}-"]
    assert path.read_bytes() == PAYLOAD


def test_cut_connection_keeps_the_part_and_the_next_fetch_resumes(server, tmp_path):
    server.cuts_left = 1
    with pytest.raises(DownloadError, match="cut off after 150000 of 300000 bytes; fetch again to resume"):
        fetch(ENTRY, tmp_path, progress=False, base_url=server.url, retries=0)
    part = tmp_path / f"{ENTRY.filename}.part"
    assert part.read_bytes() == PAYLOAD[:150_000]
    assert not (tmp_path / ENTRY.filename).exists()
    path = fetch(ENTRY, tmp_path, progress=False, base_url=server.url)
    assert server.range_headers == [None, "bytes=150000-"]
    assert path.read_bytes() == PAYLOAD and not part.exists()


def test_retries_resume_within_one_call(server, tmp_path):
    server.cuts_left = 2  # 150 000 bytes, then half of the remaining 150 000, then the rest
    path = fetch(ENTRY, tmp_path, progress=False, base_url=server.url, retries=2)
    assert server.range_headers == [None, "bytes=150000-", "bytes=225000-"]
    assert path.read_bytes() == PAYLOAD


def test_present_file_with_the_right_md5_is_not_downloaded_again(server, tmp_path):
    (tmp_path / ENTRY.filename).write_bytes(PAYLOAD)
    assert fetch(ENTRY, tmp_path, progress=False, base_url=server.url) == tmp_path / ENTRY.filename
    assert server.range_headers == []


def test_present_file_with_a_wrong_md5_is_reported_and_kept(server, tmp_path):
    (tmp_path / ENTRY.filename).write_bytes(b"not the file")
    with pytest.raises(ChecksumError, match="exists but its MD5 is not the published .*; delete it and fetch again"):
        fetch(ENTRY, tmp_path, progress=False, base_url=server.url)
    assert (tmp_path / ENTRY.filename).read_bytes() == b"not the file"
    assert server.range_headers == []


def test_missing_md5_downloads_with_a_warning(server, tmp_path):
    unverified = dataclasses.replace(ENTRY, md5=None)
    with pytest.warns(UserWarning, match="no published MD5 in the catalog; the file is NOT verified"):
        path = fetch(unverified, tmp_path, progress=False, base_url=server.url)
    assert path.read_bytes() == PAYLOAD


def test_unknown_name_suggests_close_matches(tmp_path):
    with pytest.raises(UnknownDatasetError, match=r"Unknown dataset 'ds1-photon-1'\. Did you mean 'ds1-photons-1'"):
        fetch("ds1-photon-1", tmp_path, progress=False)
    assert files_in(tmp_path) == []


def test_http_404_is_one_clear_error(server, tmp_path):
    other = dataclasses.replace(ENTRY, filename="absent.hdf5")
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(other, tmp_path, progress=False, base_url=server.url)
    assert files_in(tmp_path) == []


def test_unreachable_server_is_one_clear_error(tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot connect") as error:
        fetch(ENTRY, tmp_path, progress=False, base_url=f"http://127.0.0.1:{port}")
    assert "\n" not in str(error.value)


def test_destination_that_is_a_file_is_refused(server, tmp_path):
    (tmp_path / "plain").write_text("")
    with pytest.raises(ValueError, match="`dest_dir` '.*plain' is a file; give a folder"):
        fetch(ENTRY, tmp_path / "plain", progress=False, base_url=server.url)
    assert server.range_headers == []


def test_file_md5_matches_hashlib(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(PAYLOAD)
    assert file_md5(path, chunk_bytes=4096) == hashlib.md5(PAYLOAD).hexdigest()


def test_no_warning_when_the_md5_is_published(server, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fetch(ENTRY, tmp_path, progress=False, base_url=server.url)
