"""One clear line and a non-zero exit for every expected error of the command line."""

import functools

import click

from calozoo.errors import CalozooError


def reports_errors(command):
    """Turns calozoo's errors (and ValueError from bad arguments) into `Error: <one line>` and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (CalozooError, ValueError, FileNotFoundError) as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise click.ClickException(message) from None

    return wrapper
