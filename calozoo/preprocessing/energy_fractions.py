"""Layer energies as fractions: CaloFlow's u-space (the total energy fraction, then recursive layer fractions), and
the total energy fraction followed by each layer's share of the total."""

import tensorflow as tf

from calozoo.preprocessing.layers import rescale_rows

__all__ = ["energy_fractions", "energies_from_fractions", "energy_shares", "energies_from_shares", "ENERGY_VARIABLES",
           "to_energy_variables", "from_energy_variables"]

# What an energy flow learns (a family option, `energy_variables`): the layer energies over a fixed energy scale
# (the papers), CaloFlow's u-space, or the total energy fraction and each layer's share.
ENERGY_VARIABLES = ("layers", "fractions", "shares")


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


def energy_shares(layer_energies, incident_energy, factor):
    """[E_tot / (f E_inc), E_k / E_tot for k = 0..L-1], (N, L + 1), clamped to [0, 1].

    Unlike the recursive u-space, no layer is what is left after the others: generation divides the shares by their
    sum (`energies_from_shares`), so E_tot / E_inc, which classifiers read at the percent level, is one variable.
    """
    total = tf.reduce_sum(layer_energies, axis=-1, keepdims=True)
    values = tf.concat([total / (factor * incident_energy), layer_energies / total], axis=-1)
    return tf.clip_by_value(values, 0.0, 1.0)


def energies_from_shares(values, incident_energy, factor):
    """Inverse of `energy_shares`: the shares (N, L) rescaled to sum to E_tot = v_0 f E_inc (a row of zero shares
    stays zero)."""
    total = values[:, :1] * factor * incident_energy
    return rescale_rows(values[:, 1:], total, 0.0)


def to_energy_variables(kind, layer_energies, incident_energy, scale, factor):
    """Layer energies (N, L) as an energy flow's variables in [0, 1]: "layers" E_k / scale (clamped), "fractions"
    `energy_fractions`, "shares" `energy_shares` (N, L + 1); `factor` is f of the latter two."""
    if kind == "layers":
        return tf.clip_by_value(layer_energies / scale, 0.0, 1.0)
    if kind == "fractions":
        return energy_fractions(layer_energies, incident_energy, factor)
    return energy_shares(layer_energies, incident_energy, factor)


def from_energy_variables(kind, values, incident_energy, scale, factor):
    """Inverse of `to_energy_variables`: layer energies (N, L) in the units of `scale` and `incident_energy`."""
    if kind == "layers":
        return values * scale
    if kind == "shares":
        return energies_from_shares(values, incident_energy, factor)
    # float64: the last layers are what is left of E_tot after L - 1 subtractions
    energies = energies_from_fractions(tf.cast(values, tf.float64), tf.cast(incident_energy, tf.float64), factor)
    return tf.cast(energies, values.dtype)
