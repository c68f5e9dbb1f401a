"""The 'u-space' of CaloFlow's Flow-I: the total energy fraction, then recursive layer fractions."""

import tensorflow as tf

__all__ = ["energy_fractions", "energies_from_fractions"]


def energy_fractions(layer_energies, incident_energy, factor):
    """u_0 = sum_k E_k / (f E_inc); u_{n+1} = E_n / sum_{k>=n} E_k for n = 0..L-2; clamped to [0, 1].

    Args:
        layer_energies: (N, L).
        incident_energy: (N, 1), same units.
        factor: f, chosen so that u_0 < 1 (CaloFlow: 2.42 photons, 6.93 pions).
    Returns:
        (N, L) fractions.
    """
    total = tf.reduce_sum(layer_energies, axis=-1, keepdims=True)
    u0 = total / (factor * incident_energy)
    remaining = tf.math.cumsum(layer_energies, axis=-1, reverse=True)  # sum_{k>=n} E_k
    ratios = layer_energies[:, :-1] / remaining[:, :-1]
    return tf.clip_by_value(tf.concat([u0, ratios], axis=-1), 0.0, 1.0)


def energies_from_fractions(fractions, incident_energy, factor):
    """Inverse of `energy_fractions`: E_n = u_{n+1} (E_hat - sum_{k<n} E_k); the last layer takes the rest."""
    total = fractions[:, :1] * factor * incident_energy
    remaining = total[:, 0]
    energies = []
    for n in range(fractions.shape[-1] - 1):
        e_n = fractions[:, n + 1] * remaining
        energies.append(e_n)
        remaining = remaining - e_n
    energies.append(remaining)
    return tf.stack(energies, axis=-1)
