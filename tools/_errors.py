"""One clear line and a non-zero exit for every expected error of the command line; shared output options."""

import functools
from pathlib import Path

import click

from calozoo.errors import CalozooError


def reports_errors(command):
    """Turns calozoo's errors (and ValueError from bad arguments) into `Error: <one line>` and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (CalozooError, ValueError, FileNotFoundError, FileExistsError) as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise click.ClickException(message) from None

    return wrapper


overwrite_option = click.option("--overwrite", is_flag=True, help="Replace output files that exist already.")

allow_energy_range_option = click.option(
    "--allow-energy-range", is_flag=True,
    help="Accept incident energies outside the dataset's simulated range (they must still be MeV).")


def refuse_existing(*paths, overwrite: bool = False) -> None:
    """One error line for the first output that exists, unless `overwrite` (the --overwrite flag) is set."""
    from calozoo.errors import OutputExistsError

    for path in paths:
        if path is not None and Path(path).exists() and not overwrite:
            raise OutputExistsError(f"{path} exists already; choose another output or pass --overwrite to replace it.")
