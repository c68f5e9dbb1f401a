"""Sample distances: Fréchet and kernel physics distances (FPD / KPD, docs/evaluation.md section 5) and
precision / recall / density / coverage (PRDC, section 6). Our own implementations of the published definitions.

FPD and KPD follow jetnet 0.2.5's defaults: features divided by the maximum absolute value of each reference feature,
bootstrap draws *with replacement* (so sizes above the sample size are allowed), a seed of 42. A draw with replacement
is represented exactly by per-row counts, so the cost scales with the number of distinct rows, not the draw size.
"""

from __future__ import annotations

import numpy as np

__all__ = ["normalise_by_reference", "frechet_distance", "fpd", "kpd", "prdc", "prdc_inputs"]


def normalise_by_reference(reference: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both samples divided, feature by feature, by the maximum |value| of that feature in `reference`
    (a feature that is 0 throughout the reference is left as it is)."""
    reference, generated = np.asarray(reference, np.float64), np.asarray(generated, np.float64)
    scale = np.max(np.abs(reference), axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return reference / scale, generated / scale


def _check_samples(reference: np.ndarray, generated: np.ndarray) -> None:
    if reference.ndim != 2 or generated.ndim != 2 or reference.shape[1] != generated.shape[1]:
        raise ValueError(f"reference and generated features must be (N, d) with the same d; "
                         f"got {reference.shape} and {generated.shape}.")
    if len(reference) < 2 or len(generated) < 2:
        raise ValueError(f"need at least 2 rows per sample; got {len(reference)} and {len(generated)}.")


def frechet_distance(mean_1, cov_1, mean_2, cov_2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) of two Gaussians.

    Tr (S1 S2)^(1/2) is computed as the sum of the square roots of the eigenvalues of the symmetric
    S1^(1/2) S2 S1^(1/2), which has the same spectrum and is numerically stable.
    """
    values, vectors = np.linalg.eigh(cov_1)
    root_1 = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    middle = root_1 @ cov_2 @ root_1
    trace_root = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(0.5 * (middle + middle.T)), 0.0, None)))
    diff = np.asarray(mean_1) - np.asarray(mean_2)
    return float(diff @ diff + np.trace(cov_1) + np.trace(cov_2) - 2.0 * trace_root)


def _weighted_gaussian(x: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (ddof = 1) of the sample that holds row i of x counts[i] times."""
    n = counts.sum()
    mean = counts @ x / n
    centred = x - mean
    return mean, (centred * counts[:, None]).T @ centred / (n - 1)


def fpd(reference: np.ndarray, generated: np.ndarray, min_samples: int = 10_000, max_samples: int = 50_000,
        num_batches: int = 20, num_points: int = 10, seed: int = 42, normalise: bool = True) -> tuple[float, float]:
    """Fréchet physics distance and its error, extrapolated to infinite sample size.

    For sizes n evenly spaced in 1/n between 1/min_samples and 1/max_samples, `num_batches` pairs of samples of
    size n are drawn with replacement; their mean Fréchet distance is fitted by a + b / n with a, b >= 0.

    Returns:
        (a, sqrt(var a)): the intercept and its fit uncertainty (multiply by 1e3 for the paper's units).
    """
    from scipy.optimize import curve_fit

    reference, generated = np.asarray(reference, np.float64), np.asarray(generated, np.float64)
    _check_samples(reference, generated)
    if normalise:
        reference, generated = normalise_by_reference(reference, generated)
    rng = np.random.default_rng(seed)
    sizes = (1.0 / np.linspace(1.0 / min_samples, 1.0 / max_samples, num_points)).astype(int)
    means = []
    for n in sizes:
        values = []
        for _ in range(num_batches):
            ref_counts = np.bincount(rng.integers(len(reference), size=n), minlength=len(reference)).astype(np.float64)
            gen_counts = np.bincount(rng.integers(len(generated), size=n), minlength=len(generated)).astype(np.float64)
            values.append(frechet_distance(*_weighted_gaussian(reference, ref_counts),
                                           *_weighted_gaussian(generated, gen_counts)))
        means.append(np.mean(values))
    params, covariance = curve_fit(lambda x, a, b: a + b * x, 1.0 / sizes, np.asarray(means),
                                   bounds=([0.0, 0.0], [np.inf, np.inf]))
    return float(params[0]), float(np.sqrt(covariance[0, 0]))


def _kernel_weighted_sum(x: np.ndarray, wx: np.ndarray, y: np.ndarray, wy: np.ndarray, block: int = 2048) -> float:
    """sum_ij wx_i wy_j k(x_i, y_j) for the polynomial kernel k = (x.y / d + 1)^4, in row blocks."""
    d = x.shape[1]
    total = 0.0
    for start in range(0, len(x), block):
        kernel = (x[start : start + block] @ y.T / d + 1.0) ** 4
        total += float(wx[start : start + block] @ kernel @ wy)
    return total


def _draw(x: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A draw of n rows with replacement, as (distinct rows, their counts)."""
    rows, counts = np.unique(rng.integers(len(x), size=n), return_counts=True)
    return x[rows], counts.astype(np.float64)


def _unbiased_mmd2(x, wx, y, wy) -> float:
    """Unbiased MMD^2 of two weighted draws: self-pairs (i = i) are excluded from the within-sample means."""
    n, m, d = wx.sum(), wy.sum(), x.shape[1]
    diag_x = np.sum(wx * (np.einsum("ij,ij->i", x, x) / d + 1.0) ** 4)
    diag_y = np.sum(wy * (np.einsum("ij,ij->i", y, y) / d + 1.0) ** 4)
    kxx = (_kernel_weighted_sum(x, wx, x, wx) - diag_x) / (n * (n - 1))
    kyy = (_kernel_weighted_sum(y, wy, y, wy) - diag_y) / (m * (m - 1))
    return kxx + kyy - 2.0 * _kernel_weighted_sum(x, wx, y, wy) / (n * m)


def kpd(reference: np.ndarray, generated: np.ndarray, num_batches: int = 10, batch_size: int = 10_000,
        seed: int = 42, normalise: bool = True) -> tuple[float, float]:
    """Kernel physics distance: median over `num_batches` of the unbiased MMD^2 with the polynomial kernel
    (x.y / d + 1)^4 between draws of `batch_size` rows (with replacement) of each sample.

    Returns:
        (median, half the spread between the 16.275th and 83.725th percentiles).
    """
    reference, generated = np.asarray(reference, np.float64), np.asarray(generated, np.float64)
    _check_samples(reference, generated)
    if normalise:
        reference, generated = normalise_by_reference(reference, generated)
    rng = np.random.default_rng(seed)
    values = np.array([_unbiased_mmd2(*_draw(reference, batch_size, rng), *_draw(generated, batch_size, rng))
                       for _ in range(num_batches)])
    low, high = np.percentile(values, [16.275, 83.725])
    return float(np.median(values)), float((high - low) / 2.0)


def prdc_inputs(thresholded_showers: np.ndarray) -> np.ndarray:
    """log10 of the thresholded voxels with every 0 replaced by 0.1 MeV (docs/evaluation.md section 6)."""
    showers = np.asarray(thresholded_showers, np.float64)
    return np.log10(np.where(showers == 0.0, 0.1, showers))


def _kth_neighbour_distance(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of every row of x to its k-th nearest other row."""
    from sklearn.neighbors import NearestNeighbors

    distances, _ = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(x).kneighbors(x)
    return distances[:, k]


def prdc(real: np.ndarray, fake: np.ndarray, nearest_k: int = 5, max_samples: int | None = 10_000, seed: int = 0,
         chunk: int = 1000) -> dict:
    """Precision, recall, density and coverage (Naeem et al. 2020, arXiv:2002.09797) with k nearest neighbours.

    Balls of radius "distance to the k-th neighbour" around each real (fake) point; precision = share of fakes
    inside some real ball, recall = share of reals inside some fake ball, density = mean number of real balls
    holding a fake / k, coverage = share of real balls holding at least one fake. Strict `<` like the `prdc` package.

    Args:
        max_samples: if a sample has more rows, a seeded random subset of this size is used (None: all rows).

    Returns:
        {"precision", "recall", "density", "coverage", "n_real", "n_fake", "subsampled"}.
    """
    from sklearn.metrics import pairwise_distances

    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    _check_samples(real, fake)
    if len(real) <= nearest_k or len(fake) <= nearest_k:
        raise ValueError(f"PRDC with nearest_k={nearest_k} needs more than {nearest_k} rows per sample; "
                         f"got {len(real)} real and {len(fake)} fake.")
    rng = np.random.default_rng(seed)
    subsampled = False
    if max_samples is not None and max(len(real), len(fake)) > max_samples:
        subsampled = True
        real = real[np.sort(rng.permutation(len(real))[:max_samples])]
        fake = fake[np.sort(rng.permutation(len(fake))[:max_samples])]
    real_radius, fake_radius = _kth_neighbour_distance(real, nearest_k), _kth_neighbour_distance(fake, nearest_k)
    inside_real = np.zeros(len(fake))           # per fake: number of real balls that hold it
    real_in_fake = np.zeros(len(real), bool)    # per real: inside some fake ball
    nearest_fake = np.full(len(real), np.inf)   # per real: distance to the nearest fake
    for start in range(0, len(fake), chunk):
        distance = pairwise_distances(real, fake[start : start + chunk])   # (n_real, chunk)
        inside_real[start : start + chunk] = (distance < real_radius[:, None]).sum(axis=0)
        real_in_fake |= (distance < fake_radius[None, start : start + chunk]).any(axis=1)
        nearest_fake = np.minimum(nearest_fake, distance.min(axis=1))
    return {"precision": float(np.mean(inside_real > 0)), "recall": float(np.mean(real_in_fake)),
            "density": float(np.mean(inside_real) / nearest_k), "coverage": float(np.mean(nearest_fake < real_radius)),
            "n_real": len(real), "n_fake": len(fake), "subsampled": subsampled}
