"""What every reference-fixture test compares with: the normwise relative difference, its bound, the fixture files."""

from pathlib import Path

import numpy as np

RTOL = 1e-9  # float64 against the reference's float64 (issue 22: <= 1e-9 relative unless a looser bound is argued)


def relative_difference(actual, expected) -> float:
    """max |actual - expected| / max |expected|: a normwise relative difference that zeros do not blow up."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-300))


def assert_matches(actual, expected, rtol=RTOL):
    difference = relative_difference(actual, expected)
    assert difference <= rtol, f"relative difference {difference:.3g} > {rtol:g}"


def read_npz(path: Path) -> dict:
    """Every array of a fixture .npz (state_dicts keep their keys; float16-exact weights stay float16)."""
    with np.load(path) as stored:
        return {key: stored[key] for key in stored.files}
