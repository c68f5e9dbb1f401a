"""Metrics of a trained model on showers it never saw: what goes into a model card."""

from __future__ import annotations

import numpy as np

from calozoo.evaluation.separation import separation_powers, summarize_separation

__all__ = ["heldout_metrics"]


def heldout_metrics(model, showers, energies, seed: int = 12345, batch_size: int = 10_000) -> dict:
    """Separation powers of generated vs held-out showers at the same incident energies (and the held-out
    log-likelihood for models with a density).

    Returns:
        dict with `n_showers`, `separation_power` (every histogram), `separation_summary` (means), and
        `heldout_log_prob` where available.
    """
    energies = np.asarray(energies, np.float64).reshape(-1, 1)
    generated = model.generate(energies, seed=seed, batch_size=batch_size)
    powers = separation_powers(generated, energies, showers, energies, model.geometry)
    metrics = {"n_showers": int(len(energies)), "generation_seed": seed,
               "separation_power": {k: float(v) for k, v in powers.items()},
               "separation_summary": {k: float(v) for k, v in summarize_separation(powers).items()}}
    if model.has_density:
        log_prob = np.concatenate([model.log_prob(showers[i : i + 2000], energies[i : i + 2000]).numpy()
                                   for i in range(0, len(energies), 2000)])
        metrics["heldout_log_prob"] = float(np.mean(log_prob))
        metrics["log_prob_space"] = model.log_prob_space
    return metrics
