"""CaloMan's flows ('simple_nsf'): layers of RQS coupling -> fixed random permutation -> LU-linear."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from calozoo.artifacts import parameter_count
from calozoo.bijectors.composition import Composition, Step
from calozoo.bijectors.gaussian_base import StandardNormalBase
from calozoo.bijectors.layerwise_permutation import FixedPermutation
from calozoo.bijectors.lu_linear import LULinear, lu_linear_num_params
from calozoo.bijectors.rq_coupling import RQSCoupling, rqs_coupling_num_params
from calozoo.bijectors.rq_spline import SplineSettings

tfb = tfp.bijectors

__all__ = ["CouplingRQSFlow"]


class CouplingRQSFlow(StandardNormalBase, tf.Module):
    """Conditional flow of `num_layers` x [RQSCoupling (alternating masks), random permutation, LULinear].

    Towards the base (density), as nflows composes them: x -> C_0 -> P_0 -> LU_0 -> C_1 -> ... -> z ~ N(0, I).
    Both directions are one pass per layer, so sampling costs what a density evaluation costs.

    References:
        Cresswell et al., CaloMan, arXiv:2211.15380; Durkan et al., Neural Spline Flows, arXiv:1906.04032.

    Example:
        >>> flow = CouplingRQSFlow(features=4, context=1, hidden=8, num_layers=2, num_blocks=1)
        >>> flow.log_prob(np.zeros((2, 4)), np.zeros((2, 1))).shape
        TensorShape([2])
    """

    def __init__(self, features: int, context: int, hidden: int = 64, num_layers: int = 4, num_blocks: int = 3,
                 spline: SplineSettings | None = None, permutation_seed: int = 0, seed: int = 0, dtype=tf.float64,
                 name: str | None = None):
        super().__init__(name=name or "coupling_rqs_flow")
        if num_layers < 1:
            raise ValueError(f"`num_layers` must be >= 1; got {num_layers}.")
        self.features, self.context = features, context
        self.dtype = tf.as_dtype(dtype)
        self.spline = spline or SplineSettings(8, 1.0, 1e-3, 1e-3, 1e-3)
        rng = np.random.default_rng(permutation_seed)
        with self.name_scope:
            self.couplings = [RQSCoupling(features, k % 2, context, hidden, num_blocks, self.spline,
                                          seed=seed * 1000 + k, dtype=self.dtype, name=f"coupling{k}")
                              for k in range(num_layers)]
            self.permutations = [FixedPermutation(rng.permutation(features), name=f"permutation{k}")
                                 for k in range(num_layers)]
            self.linears = [LULinear(features, dtype=self.dtype, name=f"lu{k}") for k in range(num_layers)]
        self.composition = Composition([
            step
            for coupling, permutation, linear in zip(self.couplings, self.permutations, self.linears)
            for step in (Step.of(coupling, conditioned=True), Step.permutation(permutation), Step.of(linear))
        ])

    @staticmethod
    def expected_num_params(features: int, context: int, hidden: int, num_layers: int, num_blocks: int,
                            num_bins: int) -> int:
        """Trainable parameters from the layer shapes, without building anything."""
        return sum(rqs_coupling_num_params(features, k % 2, context, hidden, num_blocks, num_bins)
                   + lu_linear_num_params(features) for k in range(num_layers))

    @property
    def num_params(self) -> int:
        return parameter_count(self)

    def to_base(self, x, context=None):
        """Density direction: (z, log|dz/dx|)."""
        result = self.composition.to_base(tf.convert_to_tensor(x, self.dtype), conditional_input=self._context(context))
        return result.output, result.logdet

    def to_data(self, z, context=None):
        """Sampling direction: (x, log|dx/dz|)."""
        result = self.composition.to_data(tf.convert_to_tensor(z, self.dtype), conditional_input=self._context(context))
        return result.output, result.logdet

    def _context(self, context):
        return None if context is None else tf.convert_to_tensor(context, self.dtype)

    def log_prob(self, x, context=None, training=False):
        """log p(x | context); `training` is accepted for the shared likelihood trainer (no dropout here)."""
        z, logdet = self.to_base(x, context)
        return self.base_log_prob(z) + logdet

    def sample_from_noise(self, z, context=None):
        """Maps standard-normal noise to data."""
        return self.to_data(z, context)[0]

    @property
    def bijector(self) -> tfb.Chain:
        """The flow as one TFP bijector (base -> data); condition it with `bijector_kwargs(context)`."""
        return self.composition.bijector(self.name)

    def bijector_kwargs(self, context) -> dict:
        """Name-keyed conditioning for `bijector`: every coupling receives `conditional_input=context`."""
        return self.composition.conditioning(conditional_input=context)
