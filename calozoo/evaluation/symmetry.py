"""Is a shower sample symmetric in alpha? The test behind the rotation/mirror augmentation of DS2/DS3 training.

Per shower, the fraction of its energy in each alpha bin (summed over layers and radii). Under the symmetry the
mean fraction is 1/n_alpha in every bin, and the energy-weighted dipole (mean cos alpha, mean sin alpha) is 0.
The flatness test is a chi2 of the mean fractions with their full covariance (one bin dropped: the fractions sum
to 1), so correlated bins are not counted twice.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats

from calozoo.data.geometry import Geometry

__all__ = ["AlphaSymmetry", "alpha_symmetry_check"]


@dataclasses.dataclass(frozen=True)
class AlphaSymmetry:
    """The result of `alpha_symmetry_check`."""

    n_showers: int
    n_alpha: int
    mean_fractions: list
    max_relative_deviation: float  # max |mean fraction * n_alpha - 1|
    chi2: float
    ndf: int
    p_value: float
    dipole_cos: float
    dipole_cos_error: float
    dipole_sin: float
    dipole_sin_error: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def alpha_symmetry_check(showers, geometry: Geometry) -> AlphaSymmetry:
    """Flatness of the per-alpha-bin energy fractions of `showers` (N, V) on a geometry whose layers share one
    (n_alpha, n_r) binning (DS2, DS3). Empty showers are skipped."""
    layers = geometry.layers
    n_alpha, n_r = layers[0].n_alpha, layers[0].n_r
    if any((layer.n_alpha, layer.n_r) != (n_alpha, n_r) for layer in layers) or n_alpha < 2:
        raise ValueError("alpha_symmetry_check needs layers that all share one (n_alpha, n_r) binning with "
                         "n_alpha >= 2 (datasets 2 and 3).")
    per_alpha = np.asarray(showers, np.float64).reshape(len(showers), len(layers), n_alpha, n_r).sum(axis=(1, 3))
    totals = per_alpha.sum(axis=1, keepdims=True)
    fractions = per_alpha[totals[:, 0] > 0] / totals[totals[:, 0] > 0]
    n = len(fractions)
    mean = fractions.mean(axis=0)
    deviation = (mean - 1.0 / n_alpha)[:-1]
    covariance = np.cov(fractions[:, :-1], rowvar=False) / n
    chi2 = float(deviation @ np.linalg.solve(covariance, deviation))
    ndf = n_alpha - 1
    centres = -math.pi + (np.arange(n_alpha) + 0.5) * 2 * math.pi / n_alpha
    cos_moment, sin_moment = fractions @ np.cos(centres), fractions @ np.sin(centres)
    return AlphaSymmetry(
        n_showers=n, n_alpha=n_alpha, mean_fractions=mean.tolist(),
        max_relative_deviation=float(np.abs(mean * n_alpha - 1).max()), chi2=chi2, ndf=ndf,
        p_value=float(stats.chi2.sf(chi2, ndf)),
        dipole_cos=float(cos_moment.mean()), dipole_cos_error=float(cos_moment.std(ddof=1) / math.sqrt(n)),
        dipole_sin=float(sin_moment.mean()), dipole_sin_error=float(sin_moment.std(ddof=1) / math.sqrt(n)))
