"""The CaloChallenge 2022 shower files: flat names, Zenodo records, download URLs and published MD5s.

    >>> from calozoo.data.catalog import get_dataset, list_datasets
    >>> list_datasets("ds3-*")
    ['ds3-1', 'ds3-2', 'ds3-3', 'ds3-4']
    >>> get_dataset("ds1-photons-1").url
    'https://zenodo.org/records/8099322/files/dataset_1_photons_1.hdf5?download=1'

Sources (no file could be checked here: the machines reach no data host):
    - Records and MD5s: the data loader of CaloPointFlow (simonschnake/CaloPointFlow, `calopointflow/data.py`
      @ 21904a78), listed in docs/datasets.md section 1.
      DS2 and DS3 use the version records 6366271 and 6366324 behind the concept DOIs 6366270 and 6366323.
    - Sizes: only the two DS2 files have a size here, taken from a third-party download script that quotes the
      Zenodo record (1 356 475 617 and 1 366 708 391 bytes). The other sizes are unknown (None); the download
      takes the size from the server's Content-Length instead.
    - Shower counts: docs/datasets.md sections 2 and 3. The DS1 pion counts are left unknown because our two notes
      disagree (120 800 for both files versus 120 230 for the second one).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re

from calozoo.errors import UnknownDatasetError

__all__ = ["ZENODO_RECORDS_URL", "CATALOG", "DatasetFile", "list_datasets", "get_dataset"]

ZENODO_RECORDS_URL = "https://zenodo.org/records"


@dataclasses.dataclass(frozen=True)
class DatasetFile:
    """One downloadable CaloChallenge file.

    Attributes:
        name: the flat calozoo name, e.g. `ds1-photons-1`.
        filename: the file name on Zenodo, e.g. `dataset_1_photons_1.hdf5`.
        record: the Zenodo record id that holds the file.
        md5: the published MD5 (32 lowercase hex digits), or None when unknown: then the download is not
            verified and a warning says so.
        geometry: the calozoo geometry name (`calozoo.data.geometry.DATASET_NAMES`).
        role: `train` or `reference` (the evaluation reference of the challenge).
        size: the size in bytes if known, else None.
        n_showers: the number of showers if known, else None.
    """

    name: str
    filename: str
    record: str
    md5: str | None
    geometry: str
    role: str
    size: int | None = None
    n_showers: int | None = None

    def __post_init__(self):
        if self.md5 is not None and not re.fullmatch(r"[0-9a-f]{32}", self.md5):
            raise ValueError(f"`md5` of {self.name!r} must be 32 lowercase hex digits or None; got {self.md5!r}.")

    @property
    def url(self) -> str:
        """The Zenodo download URL."""
        return f"{ZENODO_RECORDS_URL}/{self.record}/files/{self.filename}?download=1"


_DS1, _DS2, _DS3 = "8099322", "6366271", "6366324"

_FILES = (
    DatasetFile("ds1-photons-1", "dataset_1_photons_1.hdf5", _DS1, "005d2adeda7db034b388112661265656",
                "1-photons", "train", n_showers=121_000),
    DatasetFile("ds1-photons-2", "dataset_1_photons_2.hdf5", _DS1, "4767715ed56e99565fd9c67340661e70",
                "1-photons", "reference", n_showers=121_000),
    DatasetFile("ds1-pions-1", "dataset_1_pions_1.hdf5", _DS1, "6a5f52722064a1bcd8a0bc002f16515d",
                "1-pions", "train"),
    DatasetFile("ds1-pions-2", "dataset_1_pions_2.hdf5", _DS1, "fee7457b40127bc23c8ab909e2638ca0",
                "1-pions", "reference"),
    DatasetFile("ds2-1", "dataset_2_1.hdf5", _DS2, "e590333e9a2da51b258288d74bd8357a",
                "2", "train", size=1_356_475_617, n_showers=100_000),
    DatasetFile("ds2-2", "dataset_2_2.hdf5", _DS2, "7a56fd68aa53ded37c2ac445694d9736",
                "2", "reference", size=1_366_708_391, n_showers=100_000),
    DatasetFile("ds3-1", "dataset_3_1.hdf5", _DS3, "d33f03418aa311b0965452fcbef1ff87", "3", "train", n_showers=50_000),
    DatasetFile("ds3-2", "dataset_3_2.hdf5", _DS3, "911dec2c40aafa64a07b7450b80881bf", "3", "train", n_showers=50_000),
    DatasetFile("ds3-3", "dataset_3_3.hdf5", _DS3, "5ea62f6831a1821bb5035fafc9f030e8",
                "3", "reference", n_showers=50_000),
    DatasetFile("ds3-4", "dataset_3_4.hdf5", _DS3, "5e8d82e6a6c28c6914a3b602a1cfa299",
                "3", "reference", n_showers=50_000),
)

CATALOG: dict[str, DatasetFile] = {entry.name: entry for entry in _FILES}


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_datasets(pattern: str = "*") -> list[str]:
    """Catalog names matching an fnmatch pattern (e.g. `ds1-*`), in natural order."""
    return sorted((name for name in CATALOG if fnmatch.fnmatch(name, pattern)), key=_natural_key)


def get_dataset(name: str) -> DatasetFile:
    """The catalog entry of `name`; an unknown name raises UnknownDatasetError listing the closest names."""
    try:
        return CATALOG[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(CATALOG), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownDatasetError(f"Unknown dataset '{name}'.{hint} Run `calozoo data list` to see all "
                                  f"datasets.") from None
