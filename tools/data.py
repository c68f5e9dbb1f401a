"""`calozoo data`: list and fetch the CaloChallenge files, split a shower file into train / validation."""

from pathlib import Path

import click
import numpy as np
from tqdm.auto import tqdm

from calozoo_tools._errors import overwrite_option, refuse_existing, reports_errors

_VALUES_PER_BLOCK = 10_000_000  # voxel values read at a time by `split` (40 MB of float32)


@click.group("data")
def data_group():
    """The CaloChallenge shower files: list, fetch, split."""


def _size_text(size):
    return "-" if size is None else f"{size / 1e9:.2f} GB"


@data_group.command("list")
@click.argument("pattern", default="*")
@reports_errors
def list_command(pattern):
    """Catalog files matching PATTERN (fnmatch, e.g. 'ds3-*'): name, file, role, showers, size, Zenodo record."""
    from calozoo.data.catalog import get_dataset, list_datasets

    names = list_datasets(pattern)
    if not names:
        raise click.ClickException(f"No dataset matches '{pattern}'. Run `calozoo data list` to see all datasets.")
    for name in names:
        entry = get_dataset(name)
        showers = "-" if entry.n_showers is None else str(entry.n_showers)
        click.echo(f"{name:14s} {entry.filename:26s} {entry.role:9s} {showers:>7s} {_size_text(entry.size):>8s}  "
                   f"zenodo {entry.record}  md5 {entry.md5 or '-'}")


def _selected_names(names):
    from calozoo.data.catalog import get_dataset, list_datasets

    selected = []
    for name in names:
        matches = list_datasets(name) if any(char in name for char in "*?[") else [get_dataset(name).name]
        if not matches:
            raise click.ClickException(f"No dataset matches '{name}'. Run `calozoo data list` to see all datasets.")
        selected += [match for match in matches if match not in selected]
    return selected


@data_group.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--dest", default=".", show_default=True, envvar="CALOZOO_DATA_DIR", type=click.Path(file_okay=False),
              help="Folder for the files (env CALOZOO_DATA_DIR).")
@click.option("--url-base", default=None, help="Mirror folder URL replacing Zenodo (env CALOZOO_DATA_URL).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@reports_errors
def fetch_command(names, dest, url_base, quiet):
    """Download the files NAMES (catalog names or patterns such as 'ds3-*'), resuming and MD5-checked."""
    from calozoo.data.download import fetch

    for name in _selected_names(names):
        path = fetch(name, dest, progress=not quiet, base_url=url_base)
        click.echo(f"{name}: {path}")


def _check_outputs(file, train, validation):
    paths = [Path(p).resolve() for p in (file, train, validation)]
    if len(set(paths)) != 3:
        raise click.UsageError("FILE, --train and --validation must be three different paths.")


def _copy_rows(file, train_writer, validation_writer, is_validation, n_voxels):
    """Streams FILE block by block, routing each row to the train or the validation writer."""
    from calozoo.data.files import read_showers

    block = max(1, _VALUES_PER_BLOCK // n_voxels)
    with tqdm(total=len(is_validation), unit="shower", desc="split") as bar:
        for start in range(0, len(is_validation), block):
            energies, showers = read_showers(file, n_voxels, start, start + block)
            to_validation = is_validation[start : start + len(energies)]
            train_writer.append(energies[~to_validation], showers[~to_validation])
            validation_writer.append(energies[to_validation], showers[to_validation])
            bar.update(len(energies))


def _voxel_count(file):
    from calozoo.data.files import read_showers

    return read_showers(file, stop=1, validate=False)[1].shape[1]


@data_group.command("split")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--validation-fraction", type=float, default=0.3, show_default=True,
              help="Fraction of the showers that go to the validation file.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random split.")
@click.option("--train", "train", required=True, type=click.Path(dir_okay=False), help="Output: training showers.")
@click.option("--validation", "validation", required=True, type=click.Path(dir_okay=False),
              help="Output: validation showers.")
@overwrite_option
@reports_errors
def split_command(file, validation_fraction, seed, train, validation, overwrite):
    """Split FILE into disjoint, seeded train and validation files (both written atomically, or neither)."""
    from calozoo.data.files import ShowerWriter, read_incident_energies, train_validation_split

    _check_outputs(file, train, validation)
    refuse_existing(train, validation, overwrite=overwrite)
    n = len(read_incident_energies(file))
    train_rows, validation_rows = train_validation_split(n, validation_fraction, seed)
    if len(train_rows) == 0 or len(validation_rows) == 0:
        raise ValueError(f"A validation fraction of {validation_fraction} of {n} showers leaves "
                         f"{len(train_rows)} for training and {len(validation_rows)} for validation; both need >= 1.")
    is_validation = np.zeros(n, dtype=bool)
    is_validation[validation_rows] = True
    n_voxels = _voxel_count(file)
    attrs = {"source": str(file), "validation_fraction": validation_fraction, "seed": seed}
    with ShowerWriter(train, n_voxels, attrs={**attrs, "split": "train"}) as train_writer, \
            ShowerWriter(validation, n_voxels, attrs={**attrs, "split": "validation"}) as validation_writer:
        _copy_rows(file, train_writer, validation_writer, is_validation, n_voxels)
    click.echo(f"wrote {len(train_rows)} showers to {train} and {len(validation_rows)} to {validation}")
