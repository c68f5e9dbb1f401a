"""What every family's trainer does first: merge a recipe over its defaults, and set the validation rows apart."""

from __future__ import annotations

import numpy as np

__all__ = ["merged_settings", "fit_validation_rows"]


def merged_settings(defaults: dict, settings: dict | None) -> dict:
    """`defaults` updated by `settings`; a dict entry (one part's recipe) is updated key by key, not replaced.

        >>> merged_settings({"epochs": 10, "flow": {"batch_size": 8, "lr": 1e-3}}, {"flow": {"lr": 2e-3}})
        {'epochs': 10, 'flow': {'batch_size': 8, 'lr': 0.002}}
    """
    merged = {key: (dict(value) if isinstance(value, dict) else value) for key, value in defaults.items()}
    for key, value in (settings or {}).items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    return merged


def fit_validation_rows(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fitting rows, validation rows) of a seeded permutation of `n` rows, in permutation order; at least one
    validation row.

        >>> fit, valid = fit_validation_rows(10, 0.2, seed=0)
        >>> len(fit), len(valid), sorted([*fit, *valid]) == list(range(10))
        (8, 2, True)
    """
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(float(validation_fraction) * n)))
    return order[n_val:], order[:n_val]
