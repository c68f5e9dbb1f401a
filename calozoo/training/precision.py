"""Mixed precision for training: the MADE products in bfloat16, everything else in the model's dtype.

What runs in bfloat16 under `network_precision(model, "mixed_bfloat16")`: the matrix products of every MADE's
one-pass direction (the masked layers and the context layer), the direction a MAF teacher's density and an IAF
student's sampling use, so the direction every calozoo family trains. What stays in the model's dtype (float32 or
float64): the weights and their updates, the spline transforms and their log-determinants (a bfloat16 log|det J|
summed over hundreds of voxels would lose whole nats), the preprocessing (logits of fractions down to 1e-6), the
sequential D-pass solve, and the networks that are not MADEs (L2LFlows' U-Nets, CaloPointFlow's DeepSets,
CaloMan's autoencoder), which this option leaves untouched. benchmarks/mixed_precision.py measures what it changes.

bfloat16 keeps float32's exponent range, so no loss scaling is needed; float16 would need it and is not offered.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf

from calozoo.bijectors.made import MADE

__all__ = ["PRECISIONS", "network_precision", "set_network_precision"]

PRECISIONS = {"default": None, "mixed_bfloat16": tf.bfloat16}


def set_network_precision(model: tf.Module, precision: str) -> int:
    """Sets the compute dtype of every MADE in `model` ("default": the weights' own); returns how many."""
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {list(PRECISIONS)}; got {precision!r}.")
    mades = [module for module in (model, *model.submodules) if isinstance(module, MADE)]
    for made in mades:
        made.compute_dtype = PRECISIONS[precision]
    return len(mades)


@contextlib.contextmanager
def network_precision(model: tf.Module, precision: str):
    """`set_network_precision` for the duration of a block (training), then back to the weights' dtype."""
    if set_network_precision(model, precision) == 0 and precision != "default":
        raise ValueError(f"{type(model).__name__} has no MADE whose products mixed precision could take over.")
    try:
        yield model
    finally:
        set_network_precision(model, "default")
