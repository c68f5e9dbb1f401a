"""Exceptions that calozoo raises for bad input, unknown names and missing files."""

__all__ = [
    "CalozooError",
    "ShowerFileError",
    "UnknownModelError",
    "MissingWeightsError",
    "ChecksumError",
    "UnknownDatasetError",
    "DownloadError",
    "MissingDependencyError",
    "EnergyRangeError",
    "OutputExistsError",
    "CheckpointError",
]


class CalozooError(Exception):
    """Base class: the message is one line that names the problem and the fix.

    The command line prints such an error as a single line and exits non-zero.
    """


class ShowerFileError(CalozooError, ValueError):
    """A shower file or array is malformed (keys, voxel count, NaN, negative values...)."""


class UnknownModelError(CalozooError, KeyError):
    """A model name is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingWeightsError(CalozooError, FileNotFoundError):
    """A registered model has no trained weights where calozoo looked."""


class ChecksumError(CalozooError, ValueError):
    """A downloaded file does not have the published checksum."""


class UnknownDatasetError(CalozooError, KeyError):
    """A dataset name is not in the CaloChallenge catalog."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DownloadError(CalozooError, OSError):
    """A download could not be started or was cut off; a cut-off download resumes when fetched again."""


class MissingDependencyError(CalozooError, ImportError):
    """An optional package that a feature needs is not installed; the message names the pip command."""


class EnergyRangeError(CalozooError, ValueError):
    """Incident energies outside the dataset's simulated range (most often GeV given where MeV is expected)."""


class OutputExistsError(CalozooError, FileExistsError):
    """An output file or directory exists already and `--overwrite` was not given."""


class CheckpointError(CalozooError, ValueError):
    """A checkpoint of the reference (PyTorch) code does not fit the model it is imported as: keys, shapes, masks."""
