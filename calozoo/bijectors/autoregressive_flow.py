"""A stack of MAF-RQS or IAF-RQS blocks with fixed permutations: the flows of the CaloFlow family."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from calozoo.artifacts import parameter_count
from calozoo.bijectors.composition import Composition, FlowPass, Step
from calozoo.bijectors.gaussian_base import StandardNormalBase
from calozoo.bijectors.layerwise_permutation import FixedPermutation
from calozoo.bijectors.made import MADE, made_num_params
from calozoo.bijectors.masked_autoregressive import MaskedAutoregressiveRQS
from calozoo.bijectors.rq_spline import SplineSettings
from calozoo.bijectors.zuko_made import ZukoMADE, zuko_made_num_params

tfb = tfp.bijectors
tfd = tfp.distributions

__all__ = ["AutoregressiveRQSFlow", "FlowPass", "NETWORKS"]

NETWORKS = ("nflows", "zuko")  # the masked network of every block: nflows' MADE or zuko's MaskedMLP


class AutoregressiveRQSFlow(StandardNormalBase, tf.Module):
    """Conditional flow: blocks B_0..B_{n-1} with fixed permutations P_k after B_k (nflows order).

    Towards the base (density): x -> B_0 -> P_0 -> B_1 -> ... -> z. With `kind="maf"` that direction is one
    MADE pass per block (teacher); with `kind="iaf"` the sampling direction z -> x is (student).
    `input_permutation` (default none) adds a permutation P_in before B_0, x -> P_in -> B_0 -> ...: with n - 1
    permutations after the blocks that is nflows' [Permutation, MADE] per block (ConvL2LFlow's energy flow).

    `network="zuko"` takes zuko's masked network (`ZukoMADE`) in every block instead of nflows' MADE, each block
    in its own feature `orders[k]` (zuko's NSF / MAF, whose flows have no permutation steps): `made_hidden_blocks + 1`
    hidden layers of `hidden` units either way.

    `feature_context` (nflows MADEs only; default none): for each feature of x, in the data order, the context
    column that feeds its spline parameters directly in every block (`MADE`'s per-feature context path); each
    block gets the columns in the order its permutations have given the features. `context_units` (nflows MADEs
    only; default 0): hidden units per MADE layer that see only the context (see `MADE`).

    `flow.distribution(context)` returns the `tfd.TransformedDistribution` built from TFP bijectors.

    Example:
        >>> flow = AutoregressiveRQSFlow(features=3, context=1, hidden=8, num_blocks=2, seed=0,
        ...                              permutations=[np.array([2, 1, 0])])
        >>> flow.log_prob(np.zeros((2, 3)), np.zeros((2, 1))).shape
        TensorShape([2])
    """

    def __init__(
        self,
        features: int,
        context: int,
        hidden: int,
        num_blocks: int,
        kind: str = "maf",
        permutations: Sequence[np.ndarray] | None = None,
        input_permutation: np.ndarray | None = None,
        made_hidden_blocks: int = 1,
        dropout: float = 0.0,
        spline: SplineSettings | None = None,
        seed: int = 0,
        dtype=tf.float64,
        name: str | None = None,
        network: str = "nflows",
        orders: Sequence[np.ndarray] | None = None,
        feature_context: np.ndarray | None = None,
        context_units: int = 0,
    ):
        super().__init__(name=name or "autoregressive_rqs_flow")
        if kind not in ("maf", "iaf"):
            raise ValueError(f"`kind` must be 'maf' or 'iaf'; got {kind!r}.")
        if network not in NETWORKS:
            raise ValueError(f"`network` must be one of {list(NETWORKS)}; got {network!r}.")
        if orders is not None and (network != "zuko" or len(orders) != num_blocks):
            raise ValueError(f"`orders` are for network='zuko', one per block ({num_blocks}); got {len(orders)} "
                             f"with network={network!r}.")
        permutations = [] if permutations is None else list(permutations)
        allowed = (0,) if network == "zuko" else (num_blocks - 1, num_blocks)  # zuko's flows order inside blocks
        if len(permutations) not in allowed:
            raise ValueError(f"Give {' or '.join(map(str, allowed))} permutations for {num_blocks} blocks; "
                             f"got {len(permutations)}.")
        if (feature_context is not None or context_units) and network != "nflows":
            raise ValueError("`feature_context` and `context_units` need network='nflows'.")
        self.features, self.context, self.kind, self.network = features, context, kind, network
        block_columns = _columns_per_block(feature_context, permutations, input_permutation, num_blocks)
        self.spline = spline or SplineSettings()
        self.dtype = tf.as_dtype(dtype)
        def network_of_block(k):
            if network == "nflows":
                return MADE(features, context, hidden, self.spline.num_params, made_hidden_blocks, dropout,
                            seed=seed * 1000 + k, dtype=self.dtype, feature_context=block_columns[k],
                            context_units=context_units, name=f"made{k}")
            return ZukoMADE(features, context, [hidden] * (made_hidden_blocks + 1), self.spline.num_params,
                            None if orders is None else orders[k], seed=seed * 1000 + k, dtype=self.dtype,
                            name=f"made{k}")

        with self.name_scope:
            self.mades = [network_of_block(k) for k in range(num_blocks)]
            self.permutations = [FixedPermutation(p, name=f"permutation{k}") for k, p in enumerate(permutations)]
            self.input_permutation = (None if input_permutation is None
                                      else FixedPermutation(input_permutation, name="input_permutation"))
        direction = "forward" if kind == "maf" else "inverse"
        self.blocks = [MaskedAutoregressiveRQS(m, self.spline, direction, name=f"block{k}")
                       for k, m in enumerate(self.mades)]
        self.composition = self._composition()

    # ----- structure -----------------------------------------------------------------------------
    @property
    def num_params(self) -> int:
        return parameter_count(self)

    @staticmethod
    def expected_num_params(features, context, hidden, num_blocks, num_bins, made_hidden_blocks=1,
                            network="nflows", feature_context=False) -> int:
        """Parameter count from the layer shapes, without building anything."""
        if network == "zuko":
            per_block = zuko_made_num_params(features, context, [hidden] * (made_hidden_blocks + 1),
                                             3 * num_bins - 1)
        else:
            per_block = made_num_params(features, context, hidden, made_hidden_blocks, 3 * num_bins - 1,
                                        feature_context)
        return num_blocks * per_block

    def _block_step(self, k: int) -> Step:
        """Block k as a step: one MADE pass in its cheap direction (towards the base for a MAF, towards the data
        for an IAF), the sequential D-step solve in the other. The solve keeps its log-det from the solve itself
        (as nflows) and never uses dropout: a mask drawn per step would make the log-det belong to another map,
        and CaloFlow only ever trains the one-pass direction."""
        block = self.blocks[k]

        def one_pass(h, context=None, training=False):
            return block.one_pass(h, context, training)

        def sequential(h, context=None, training=False):
            return block.sequential_with_log_det(h, context, training=False)

        if self.kind == "maf":
            return Step(block.name, one_pass, sequential, conditioned=True, bijector=block)
        return Step(f"iaf{k}", sequential, one_pass, conditioned=True, bijector=tfb.Invert(block, name=f"iaf{k}"))

    def _composition(self) -> Composition:
        """The input permutation (if any), then block B_k and permutation P_k for every k, in the density order
        x -> z."""
        steps = [] if self.input_permutation is None else [Step.permutation(self.input_permutation)]
        for k in range(len(self.blocks)):
            steps.append(self._block_step(k))
            if k < len(self.permutations):
                steps.append(Step.permutation(self.permutations[k]))
        return Composition(steps)

    # ----- the two passes ------------------------------------------------------------------------
    def to_base(self, x, context, training=False, record=False) -> FlowPass:
        """Density direction x -> z, with log|dz/dx|; one MADE pass per block for a MAF."""
        x, context = self._tensors(x, context)
        return self.composition.to_base(x, record=record, context=context, training=training)

    def to_data(self, z, context, training=False, record=False) -> FlowPass:
        """Sampling direction z -> x, with log|dx/dz|; one MADE pass per block for an IAF."""
        z, context = self._tensors(z, context)
        return self.composition.to_data(z, record=record, context=context, training=training)

    def _tensors(self, h, context):
        h = tf.convert_to_tensor(h, self.dtype)
        return h, None if context is None else tf.convert_to_tensor(context, self.dtype)

    # ----- distribution API ----------------------------------------------------------------------
    def log_prob(self, x, context=None, training=False):
        """log p(x | context)."""
        result = self.to_base(x, context, training)
        return self.base_log_prob(result.output) + result.logdet

    def sample_from_noise(self, z, context=None):
        """Maps standard-normal noise to data."""
        return self.to_data(z, context).output

    @property
    def bijector(self) -> tfb.Chain:
        """The flow as one TFP bijector (base -> data); condition it with `bijector_kwargs(context)`."""
        return self.composition.bijector(self.name)

    def bijector_kwargs(self, context) -> dict:
        """Name-keyed conditioning for `bijector`: every block receives `conditional_input=context`."""
        return self.composition.conditioning(conditional_input=context)

    def distribution(self, context) -> tfd.TransformedDistribution:
        """p(x | context) as a TFP distribution (zuko style: `flow.distribution(c).log_prob(x)`)."""
        context = tf.convert_to_tensor(context, self.dtype)
        base = tfd.Sample(tfd.Normal(tf.constant(0.0, self.dtype), tf.constant(1.0, self.dtype)), [self.features])
        return _Conditioned(base, self.bijector, self.bijector_kwargs(context))


def _columns_per_block(feature_context, permutations, input_permutation, num_blocks):
    """Each block's per-feature context columns: block k sees position i holding the data feature that the
    permutations before it moved there (towards the base, a permutation p maps h to h[p])."""
    if feature_context is None:
        return [None] * num_blocks
    columns = np.asarray(feature_context, np.int64)
    if input_permutation is not None:
        columns = columns[np.asarray(input_permutation)]
    per_block = []
    for k in range(num_blocks):
        per_block.append(columns)
        if k < len(permutations):
            columns = columns[np.asarray(permutations[k])]
    return per_block


class _Conditioned:
    """A TransformedDistribution with its bijector kwargs bound, so `log_prob(x)` / `sample(n)` just work."""

    def __init__(self, base, bijector, bijector_kwargs):
        self.distribution = tfd.TransformedDistribution(base, bijector)
        self._kwargs = bijector_kwargs

    def log_prob(self, x):
        return self.distribution.log_prob(x, bijector_kwargs=self._kwargs)

    def sample(self, seed):
        batch = tf.shape(next(iter(self._kwargs.values()))["conditional_input"])[0]
        return self.distribution.sample(batch, seed=seed, bijector_kwargs=self._kwargs)
