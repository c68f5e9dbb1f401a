"""Preprocessing steps shared by the model families (each step has a forward and an inverse)."""

from calozoo.preprocessing.dequantization import (
                                                 CDFDequantizer,
                                                 inverse_probit,
                                                 polar_to_unit_square,
                                                 probit,
                                                 uniform_dequantize,
                                                 uniform_quantize,
                                                 unit_square_to_polar,
)
from calozoo.preprocessing.energy_fractions import (
    ENERGY_VARIABLES,
    energies_from_fractions,
    energies_from_shares,
    energy_fractions,
    energy_shares,
    from_energy_variables,
    to_energy_variables,
)
from calozoo.preprocessing.frozen_statistics import FrozenMinMax, FrozenStandardizer
from calozoo.preprocessing.layers import (
    keep_filled_rows,
    layer_normalize,
    log_shares,
    rescale_layers,
    rescale_rows,
    split_layers,
)
from calozoo.preprocessing.logit import inverse_logit_transform, logit_transform

__all__ = [
    "energy_fractions",
    "energies_from_fractions",
    "energy_shares",
    "energies_from_shares",
    "ENERGY_VARIABLES",
    "to_energy_variables",
    "from_energy_variables",
    "layer_normalize",
    "rescale_layers",
    "rescale_rows",
    "keep_filled_rows",
    "log_shares",
    "split_layers",
    "logit_transform",
    "inverse_logit_transform",
    "FrozenStandardizer",
    "FrozenMinMax",
    "CDFDequantizer",
    "probit",
    "inverse_probit",
    "uniform_dequantize",
    "uniform_quantize",
    "polar_to_unit_square",
    "unit_square_to_polar",
]
