"""Preprocessing steps shared by the model families (each step has a forward and an inverse)."""

from calozoo.preprocessing.energy_fractions import energy_fractions, energies_from_fractions
from calozoo.preprocessing.layers import layer_normalize, rescale_layers, split_layers
from calozoo.preprocessing.logit import logit_transform, inverse_logit_transform

__all__ = [
    "energy_fractions",
    "energies_from_fractions",
    "layer_normalize",
    "rescale_layers",
    "split_layers",
    "logit_transform",
    "inverse_logit_transform",
]
