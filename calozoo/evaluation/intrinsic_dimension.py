"""The Levina-Bickel maximum-likelihood estimate of intrinsic dimension (CaloMan uses it to size its latent space)."""

from __future__ import annotations

import numpy as np

__all__ = ["levina_bickel", "local_inverse_dimensions", "intrinsic_dimension_of_showers"]


def local_inverse_dimensions(points, k: int) -> np.ndarray:
    """1 / m_k(x) for every point: (1 / (k - 1)) sum_{j<k} log(T_k(x) / T_j(x)), T_j the distance to the j-th
    nearest other point. Exact duplicates are dropped first (they make a distance zero)."""
    from sklearn.neighbors import NearestNeighbors

    points = np.unique(np.asarray(points, np.float64), axis=0)
    if k < 2:
        raise ValueError(f"`k` must be >= 2 neighbours; got {k}.")
    if len(points) <= k:
        raise ValueError(f"Need more than k = {k} distinct points; got {len(points)}. Pass more points or a smaller k.")
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    distances = distances[:, 1:]  # drop each point itself
    return np.mean(np.log(distances[:, -1:] / distances[:, :-1]), axis=1)


def levina_bickel(points, k: int = 20, averaging: str = "mackay-ghahramani") -> float:
    """Intrinsic dimension of a point cloud (N, D).

    Args:
        points: (N, D) samples of the manifold.
        k: neighbours per point.
        averaging: "mackay-ghahramani" (inverse of the mean of the inverse local estimates, the less biased choice
            that the CaloMan reference reports) or "levina-bickel" (mean of the local estimates).

    References:
        Levina & Bickel, NeurIPS 2004; MacKay & Ghahramani, comment on it (2005).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> plane = rng.uniform(size=(2000, 3)) @ rng.normal(size=(3, 10))
        >>> round(levina_bickel(plane, k=20))
        3
    """
    inverse = local_inverse_dimensions(points, k)
    if averaging == "mackay-ghahramani":
        return float(1.0 / np.mean(inverse))
    if averaging == "levina-bickel":
        return float(np.mean(1.0 / inverse))
    raise ValueError(f"`averaging` must be 'mackay-ghahramani' or 'levina-bickel'; got '{averaging}'.")


def intrinsic_dimension_of_showers(showers, layer_sizes=None, k: int = 20, averaging: str = "mackay-ghahramani"):
    """The estimate for showers, layer-normalised first when `layer_sizes` is given (CaloMan's autoencoder input)."""
    showers = np.asarray(showers, np.float64)
    if layer_sizes is not None:
        edges = np.cumsum([0, *layer_sizes])
        blocks = []
        for start, stop in zip(edges[:-1], edges[1:]):
            block = showers[:, start:stop]
            total = block.sum(axis=1, keepdims=True)
            blocks.append(np.divide(block, total, out=np.zeros_like(block), where=total > 0))
        showers = np.concatenate(blocks, axis=1)
    return levina_bickel(showers, k=k, averaging=averaging)
