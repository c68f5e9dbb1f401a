"""Resumable, MD5-verified downloads of the CaloChallenge files.

`fetch` streams a file into `<dest>/<file>.part`, resumes an existing `.part` with an HTTP `Range` request,
checks the published MD5 and only then renames the `.part` to the final name. So a file under its final name
is always complete and verified.

    >>> from calozoo.data.download import fetch
    >>> path = fetch("ds1-photons-1", "data/")      # doctest: +SKIP

A mirror replaces Zenodo through the `base_url` argument or the environment variable CALOZOO_DATA_URL. A
mirror is a flat folder: the file is fetched from `<base_url>/<file name>`.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

from tqdm.auto import tqdm

from calozoo.data.catalog import DatasetFile, get_dataset
from calozoo.errors import ChecksumError, DownloadError

__all__ = ["DATA_URL_ENV", "fetch", "resolve_url", "file_md5"]

DATA_URL_ENV = "CALOZOO_DATA_URL"
_CHUNK_BYTES = 1 << 20


class _Interrupted(DownloadError):
    """The stream ended early; the `.part` keeps what arrived, so the next attempt resumes."""


def file_md5(path, chunk_bytes: int = _CHUNK_BYTES) -> str:
    """The MD5 of a file as 32 lowercase hex digits, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_url(entry: DatasetFile, base_url: str | None = None) -> str:
    """Where `entry` is downloaded from: `<base_url>/<file>` if `base_url` (or else $CALOZOO_DATA_URL) is set,
    otherwise its Zenodo URL."""
    base_url = base_url or os.environ.get(DATA_URL_ENV) or None
    url = entry.url if base_url is None else f"{base_url.rstrip('/')}/{urllib.parse.quote(entry.filename)}"
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"Download URL {url!r} must start with http:// or https://; check `base_url` or "
                         f"${DATA_URL_ENV}.")
    return url


def _as_entry(name_or_entry) -> DatasetFile:
    if isinstance(name_or_entry, DatasetFile):
        return name_or_entry
    if isinstance(name_or_entry, str):
        return get_dataset(name_or_entry)
    raise TypeError(f"`name_or_entry` must be a catalog name or a DatasetFile; got {type(name_or_entry).__name__}.")


def _verify_md5(entry: DatasetFile, path: Path, actual: str | None = None) -> bool:
    """True if `path` has the published MD5; True with a warning when no MD5 is published."""
    if entry.md5 is None:
        warnings.warn(f"{entry.filename}: no published MD5 in the catalog; the file is NOT verified.", stacklevel=3)
        return True
    return (actual or file_md5(path)) == entry.md5


def _open(url: str, offset: int, timeout: float):
    """The HTTP response for `url` from byte `offset` on, or None if the server says the range is past the end."""
    headers = {"User-Agent": "calozoo-data-fetch"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # the .part is already whole (or too long): the MD5 decides
            return None
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}; check the name or the mirror "
                            f"(`--url-base` / ${DATA_URL_ENV}).") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"{url}: cannot connect ({reason}); check the network or use a mirror "
                            f"(`--url-base` / ${DATA_URL_ENV}).") from None


def _start_offset(response, offset: int, part: Path) -> int:
    """Where the response body starts: `offset` for a matching 206 answer, 0 when the server ignored Range."""
    if response.status != 206:
        return 0
    content_range = response.headers.get("Content-Range", "")
    if not content_range.startswith(f"bytes {offset}-"):
        part.unlink(missing_ok=True)
        raise DownloadError(f"{response.url}: asked for bytes from {offset} but got '{content_range}'; the partial "
                            f"file was removed, fetch again to start over.")
    return offset


def _stream(response, part: Path, start: int, size_hint: int | None, progress: bool, label: str) -> str:
    """Writes the body into `part` from byte `start` on; returns the MD5 of the whole `part`."""
    digest = hashlib.md5()
    if start:
        with open(part, "rb") as handle:
            for block in iter(lambda: handle.read(_CHUNK_BYTES), b""):
                digest.update(block)
    length = response.headers.get("Content-Length")
    expected = int(length) if length is not None else None
    total = start + expected if expected is not None else size_hint
    received = 0
    with open(part, "ab" if start else "wb") as sink, \
            tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                 disable=not progress) as bar:
        while True:
            try:
                block = response.read(_CHUNK_BYTES)
            except OSError as error:  # includes http.client.IncompleteRead and socket timeouts
                raise _Interrupted(f"{label}: download cut off after {start + received} bytes ({error}); "
                                   f"fetch again to resume.") from None
            if not block:
                break
            sink.write(block)
            digest.update(block)
            received += len(block)
            bar.update(len(block))
    if expected is not None and received < expected:
        raise _Interrupted(f"{label}: download cut off after {start + received} of {start + expected} bytes; "
                           f"fetch again to resume.")
    return digest.hexdigest()


def _download_once(url: str, part: Path, entry: DatasetFile, progress: bool, timeout: float) -> str | None:
    """One attempt; returns the MD5 of the whole `.part` (None when the server had nothing left to send)."""
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, offset, timeout)
    if response is None:
        return None
    with response:
        start = _start_offset(response, offset, part)
        return _stream(response, part, start, entry.size, progress, entry.filename)


def fetch(name_or_entry, dest_dir, progress: bool = True, base_url: str | None = None, retries: int = 3,
          timeout: float = 60.0) -> Path:
    """Downloads a CaloChallenge file into `dest_dir` and returns its path once its MD5 is verified.

    A file already present under its final name with the published MD5 is not downloaded again. A download
    goes to `<file>.part` first; an existing `.part` is resumed with a `Range` request (a server that ignores
    Range sends the whole file, which then overwrites the `.part`).

    Args:
        name_or_entry: a catalog name (see `calozoo.data.catalog.list_datasets`) or a DatasetFile.
        dest_dir: the folder to put the file in (created if missing).
        progress: show a tqdm bar.
        base_url: a mirror folder URL that replaces Zenodo; default $CALOZOO_DATA_URL, else Zenodo.
        retries: how many times a cut-off stream is resumed within this call.
        timeout: seconds to wait for the server on connect and on each read.

    Raises:
        ChecksumError: the download (whose `.part` is then removed) or the already present file has the wrong MD5.
        DownloadError: the server cannot be reached, answers an HTTP error, or the stream was cut off `retries`
            + 1 times (the `.part` is kept, so a later fetch resumes).
        UnknownDatasetError: the name is not in the catalog.
    """
    entry = _as_entry(name_or_entry)
    if retries < 0:
        raise ValueError(f"`retries` must be >= 0; got {retries}.")
    dest_dir = Path(dest_dir)
    if dest_dir.exists() and not dest_dir.is_dir():
        raise ValueError(f"`dest_dir` {str(dest_dir)!r} is a file; give a folder (it is created if missing).")
    final = dest_dir / entry.filename
    if final.exists():
        if _verify_md5(entry, final):
            return final
        raise ChecksumError(f"{final} exists but its MD5 is not the published {entry.md5}; delete it and fetch again.")
    url = resolve_url(entry, base_url)
    dest_dir.mkdir(parents=True, exist_ok=True)
    part = dest_dir / f"{entry.filename}.part"
    for attempt in range(retries + 1):
        try:
            actual = _download_once(url, part, entry, progress, timeout)
            break
        except _Interrupted:
            if attempt == retries:
                raise
    if not _verify_md5(entry, part, actual):
        got = actual or file_md5(part)
        part.unlink()
        raise ChecksumError(f"{entry.filename} from {url}: MD5 {got} is not the published {entry.md5}; the "
                            f"download was removed. Fetch again; if it fails again the source serves another file.")
    os.replace(part, final)
    return final
