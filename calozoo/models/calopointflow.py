"""CaloPointFlow for CaloChallenge datasets 2 and 3: showers as point clouds (Schnake, Krücker, Borras;
CaloPointFlow II, arXiv:2403.15782; model I, arXiv:2211.15460). Spec: docs/models.md section 4.

A shower is the set of its hit voxels. Four parts, all conditioned on E_in' = standardised log E_inc:

- `conditional_flow` (MAF-RQS, 2 dims): the shower's (number of hits, energy sum) as standardised log-ratios;
- `encoder` (DeepSets): points -> per-point MLP -> mean over the shower -> MLP -> (mu, log sigma^2) of a latent;
- `latent_flow` (RQS couplings): the latent given [E_in', conditionals];
- the point flow, every point given [E_in', conditionals, latent]: variant II (DeepSetCoupling layers on
  (z, r, energy fraction) with CDF-dequantised integer coordinates, alpha assigned at sampling) or variant I (plain
  RQS couplings on (z, x, y, energy fraction) with uniform dequantisation, alpha from (x, y)).

Training maximises an ELBO with per-dimension terms (`elbo_terms`); the preprocessing statistics are measured once
on the training showers (`adapt`) and stored as non-trainable variables. Sampling is TensorFlow ops only, so the
whole chain runs inside an exported SavedModel.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from calozoo import stateless
from calozoo.bijectors.autoregressive_flow import NETWORKS, AutoregressiveRQSFlow
from calozoo.bijectors.composition import Composition, Step
from calozoo.bijectors.deepset_coupling import DeepSetCoupling, deepset_coupling_num_params
from calozoo.bijectors.gaussian_base import LOG_2PI, standard_normal_log_prob
from calozoo.bijectors.rq_coupling import RQSCoupling, random_coupling_masks, rqs_coupling_num_params
from calozoo.bijectors.rq_spline import SplineSettings
from calozoo.data.point_clouds import (
    grid_shape,
    points_to_showers,
    segment_ids_from_counts,
    segment_mean,
    showers_to_points,
)
from calozoo.models._config import FlowConfig
from calozoo.models.base import ShowerGenerator
from calozoo.networks.mlp import MLP, gelu, mlp_num_params
from calozoo.preprocessing import (
    CDFDequantizer,
    FrozenMinMax,
    FrozenStandardizer,
    inverse_logit_transform,
    logit_transform,
    polar_to_unit_square,
    uniform_dequantize,
    uniform_quantize,
    unit_square_to_polar,
)

__all__ = ["CaloPointFlowConfig", "CaloPointFlow", "assign_alpha"]

_MIN_FRACTION = 1e-10


@dataclasses.dataclass(frozen=True)
class CaloPointFlowConfig(FlowConfig):
    """Everything that defines a CaloPointFlow model; the defaults are d2_II of the reference code
    (docs/models.md section 4.2).

    Hidden-layer lists count hidden layers: `encoder_point_hidden=[64, 128, 1024]` with `encoder_width=1024` is
    3 -> 64 -> 128 -> 1024 -> (Linear) 1024. `*_layers` are the hidden layers of a flow's conditioner MLP.

    `conditional_network` is the masked network of the conditional flow: "zuko" is the reference's (zuko's NSF: a
    MaskedMLP on [x, c], every transform in its own random feature order; the paper configurations), "nflows" the
    default (nflows' MADE with its own context layer, transforms separated by random permutations; what configs
    written before the option were trained with). `conditional_orders`, `latent_identity` and `point_identity`,
    where given, fix the orders of the zuko transforms and the identity features of every latent / point coupling
    (an imported checkpoint's); otherwise they are drawn from `mask_seed`.
    """

    family_label = "CaloPointFlow"
    datasets = ("2", "3")

    dataset: str = "2"
    variant: str = "II"  # "II" (DeepSetFlow, CDF dequantisation) or "I" (plain couplings, uniform dequantisation)
    latent_dim: int = 128
    encoder_point_hidden: tuple = (64, 128, 1024)
    encoder_width: int = 1024
    encoder_latent_hidden: tuple = (1024, 512)
    encoder_latent_width: int = 512
    conditional_transforms: int = 12
    conditional_bins: int = 12
    conditional_hidden: int = 128
    conditional_layers: int = 3
    conditional_network: str = "nflows"  # "zuko" (the reference's network) or "nflows"; see the class docstring
    conditional_orders: tuple | None = None  # zuko only: one feature order per transform
    latent_transforms: int = 8
    latent_bins: int = 8
    latent_hidden: int = 1024
    latent_layers: int = 3
    point_transforms: int = 12
    point_bins: int = 8
    point_hidden: int = 128
    point_layers: int = 3
    set_hidden: tuple = (64, 128)  # phi: identity features -> 64 -> 128 -> (linear) 512, then the mean over a shower
    set_width: int = 512
    summary_hidden: tuple = (512, 256)  # rho: 512 -> 512 -> 256 -> (linear) 128 (the reference's reduce_net_dims)
    summary_dim: int = 128
    tail_bound: float = 5.0
    slope: float = 1e-4
    logit_eps: float = 1e-6
    probit_eps: float = 1e-6
    latent_identity: tuple | None = None  # the identity features of every latent coupling
    point_identity: tuple | None = None  # the identity features of every point coupling
    max_rounds: int = 64  # model I: sampling rounds until every shower has its number of distinct cells
    seed: int = 0
    mask_seed: int = 0
    dtype: str = "float32"

    def __post_init__(self):
        if self.dataset not in self.datasets:
            raise ValueError(f"CaloPointFlow needs dataset '2' or '3'; got '{self.dataset}'.")
        if self.variant not in ("I", "II"):
            raise ValueError(f"`variant` must be 'II' or 'I'; got {self.variant!r}.")
        for key in ("encoder_point_hidden", "encoder_latent_hidden", "set_hidden", "summary_hidden"):
            object.__setattr__(self, key, tuple(int(v) for v in getattr(self, key)))
        if self.conditional_network not in NETWORKS:
            raise ValueError(f"`conditional_network` must be one of {list(NETWORKS)}; "
                             f"got {self.conditional_network!r}.")
        for key, count in (("conditional_orders", self.conditional_transforms),
                           ("latent_identity", self.latent_transforms), ("point_identity", self.point_transforms)):
            self._fix_index_lists(key, count)
        if self.conditional_orders is not None and self.conditional_network != "zuko":
            raise ValueError("`conditional_orders` are the orders of zuko transforms; set conditional_network='zuko'.")
        for key in ("conditional_transforms", "latent_transforms", "point_transforms", "latent_dim"):
            if getattr(self, key) < 1:
                raise ValueError(f"`{key}` must be >= 1; got {getattr(self, key)}.")
        if self.latent_dim < 2:
            raise ValueError(f"`latent_dim` must be >= 2 (a coupling needs two halves); got {self.latent_dim}.")

    def _fix_index_lists(self, key: str, count: int) -> None:
        """Turns a given list of index lists into a tuple of tuples, one per transform."""
        value = getattr(self, key)
        if value is None:
            return
        value = tuple(tuple(int(i) for i in indices) for indices in value)
        if len(value) != count:
            raise ValueError(f"`{key}` needs one index list per transform ({count}); got {len(value)}.")
        object.__setattr__(self, key, value)

    def spline_with(self, num_bins: int) -> SplineSettings:
        """zuko's RQS: `num_bins` bins on [-5, 5], soft-clipped raw values, no minimum sizes."""
        return SplineSettings(num_bins, self.tail_bound, 0.0, 0.0, 0.0, parametrization="zuko", slope=self.slope)

    @property
    def point_dim(self) -> int:
        """3 for II (z, r, energy), 4 for I (z, x, y, energy)."""
        return 3 if self.variant == "II" else 4

    @property
    def point_context(self) -> int:
        return 3 + self.latent_dim

    def point_masks(self) -> list[np.ndarray]:
        """The identity features of every point-flow layer: `point_identity`, or alternately 2 and 1 of 3 (II),
        2 of 4 (I), at random."""
        if self.point_identity is not None:
            return [np.array(indices) for indices in self.point_identity]
        rng = np.random.default_rng(self.mask_seed + 1)
        sizes = [2 if k % 2 == 0 else 1 for k in range(self.point_transforms)] if self.variant == "II" else \
            [2] * self.point_transforms
        return [random_coupling_masks(self.point_dim, size, rng)[0] for size in sizes]

    def latent_masks(self) -> list[np.ndarray]:
        """The features that each latent-flow layer leaves unchanged: `latent_identity`, or random halves."""
        if self.latent_identity is not None:
            return [np.array(indices) for indices in self.latent_identity]
        rng = np.random.default_rng(self.mask_seed)
        return [random_coupling_masks(self.latent_dim, self.latent_dim // 2, rng)[0]
                for _ in range(self.latent_transforms)]

    def expected_num_params(self) -> dict[str, int]:
        """Trainable parameters per part and their `total`, from the layer shapes, without building anything."""
        encoder = (mlp_num_params(self.point_dim, list(self.encoder_point_hidden), self.encoder_width)
                   + mlp_num_params(self.encoder_width, list(self.encoder_latent_hidden), self.encoder_latent_width)
                   + mlp_num_params(self.encoder_latent_width, [], 2 * self.latent_dim))
        conditional = AutoregressiveRQSFlow.expected_num_params(
            2, 1, self.conditional_hidden, self.conditional_transforms, self.conditional_bins,
            self.conditional_layers - 1, self.conditional_network)
        latent = sum(rqs_coupling_num_params(
            self.latent_dim, 0, 3, self.latent_hidden, self.latent_layers, self.latent_bins, conditioner="mlp",
            n_identity=len(mask)) for mask in self.latent_masks())
        if self.variant == "II":
            point = sum(deepset_coupling_num_params(3, len(mask), self.point_context, self.point_hidden,
                                                    self.point_layers, self.point_bins, self.set_hidden,
                                                    self.set_width, self.summary_hidden, self.summary_dim)
                        for mask in self.point_masks())
        else:
            point = sum(rqs_coupling_num_params(4, 0, self.point_context, self.point_hidden, self.point_layers,
                                                self.point_bins, conditioner="mlp", n_identity=len(mask))
                        for mask in self.point_masks())
        counts = {"encoder": encoder, "conditional_flow": conditional, "latent_flow": latent, "point_flow": point}
        counts["total"] = sum(counts.values())
        return counts


class PointEncoder(tf.Module):
    """DeepSets encoder: per-point GELU MLP, mean over each shower, GELU MLP, then the linear (mu, log sigma^2)
    heads (one 2 x latent layer: the same parameters as two)."""

    def __init__(self, config: CaloPointFlowConfig, dtype, name="encoder"):
        super().__init__(name=name)
        self.latent_dim = config.latent_dim
        with self.name_scope:
            self.point_net = MLP(config.point_dim, list(config.encoder_point_hidden), config.encoder_width,
                                 seed=config.seed + 11, dtype=dtype, name="point_net", activation="gelu")
            self.latent_net = MLP(config.encoder_width, list(config.encoder_latent_hidden),
                                  config.encoder_latent_width, seed=config.seed + 12, dtype=dtype, name="latent_net",
                                  activation="gelu")
            rng = np.random.default_rng(config.seed + 13)
            bound = 1.0 / np.sqrt(config.encoder_latent_width)
            shape = (config.encoder_latent_width, 2 * config.latent_dim)
            np_dtype = tf.as_dtype(dtype).as_numpy_dtype
            self.heads_kernel = tf.Variable(rng.uniform(-bound, bound, shape).astype(np_dtype), name="heads_kernel")
            self.heads_bias = tf.Variable(rng.uniform(-bound, bound, shape[1:]).astype(np_dtype), name="heads_bias")

    def __call__(self, points, segment_ids, n_showers):
        """(mu, log sigma^2), each (N, latent); a shower without points gets the encoding of a zero mean."""
        pooled = segment_mean(self.point_net(points), segment_ids, n_showers)
        h = gelu(self.latent_net(pooled))
        out = tf.matmul(h, self.heads_kernel) + self.heads_bias
        return out[:, : self.latent_dim], out[:, self.latent_dim :]


def assign_alpha(segment_ids, z_index, r_index, n_alpha: int, seed, grid_cells: int, n_r: int):
    """Alpha bins for points given their shower and (z, r) cell: the c points of an occupied cell get distinct alpha
    bins of a random permutation of the `n_alpha` bins (docs/models.md section 4.4, step 5); the (c - n_alpha) points
    beyond one chunk reuse the permutation, so their energies add to occupied voxels.

    Args:
        segment_ids, z_index, r_index: (P,) int32.
        seed: int32[2].
        grid_cells: n_z * n_r, the (z, r) cells of a shower.
    Returns:
        (P,) int32 alpha bins.
    """
    cell = segment_ids * grid_cells + z_index * n_r + r_index
    order = tf.argsort(cell, stable=True)
    sorted_cell = tf.gather(cell, order)
    is_start = tf.not_equal(sorted_cell, tf.concat([[-1], sorted_cell[:-1]], axis=0))
    group = tf.cumsum(tf.cast(is_start, tf.int32)) - 1
    positions = tf.range(tf.shape(cell)[0])
    starts = tf.boolean_mask(positions, is_start)
    rank = positions - tf.gather(starts, group)
    keys = stateless.uniform(tf.stack([tf.shape(starts)[0], n_alpha]), seed)
    permutations = tf.cast(tf.argsort(keys, axis=-1), tf.int32)
    alpha_sorted = tf.gather_nd(permutations, tf.stack([group, rank % n_alpha], axis=-1))
    return tf.scatter_nd(order[:, None], alpha_sorted, tf.shape(cell))


class CaloPointFlow(ShowerGenerator):
    """A CaloPointFlow generator (variant II or I, see the module docstring).

    Example:
        >>> config = CaloPointFlowConfig(latent_dim=4, encoder_point_hidden=[8], encoder_width=8,
        ...     encoder_latent_hidden=[8], encoder_latent_width=8, conditional_transforms=2, conditional_hidden=8,
        ...     latent_transforms=2, latent_hidden=8, point_transforms=2, point_hidden=8, set_hidden=[8],
        ...     set_width=8, summary_hidden=[8], summary_dim=4)
        >>> CaloPointFlow(config).generate([1024.0, 65536.0], seed=1).shape
        (2, 6480)
    """

    sequential_slices = True  # the point clouds of parallel slices together exhaust memory at batch 10 000
    supports_xla = False  # the number of points is data dependent

    def __init__(self, config: CaloPointFlowConfig, name: str | None = None):
        super().__init__(config.dataset, name=name or "calopointflow")
        self.config = config
        self.dtype = tf.as_dtype(config.dtype)
        self.grid = grid_shape(config.dataset)
        # slices of generation: DS3 showers have about 1 500 hits, and 1 000 of them at once need more than 10 GB
        self.micro_batch = 1000 if config.dataset == "2" else 200
        dtype = self.dtype
        with self.name_scope:
            self.incident_standardizer = FrozenStandardizer(1, dtype, name="incident_standardizer")
            self.conditional_standardizer = FrozenStandardizer(2, dtype, name="conditional_standardizer")
            self.value_min_max = FrozenMinMax(1, dtype, name="value_min_max")
            self.value_standardizer = FrozenStandardizer(1, dtype, name="value_standardizer")
            if config.variant == "II":
                self.dequantizer = CDFDequantizer([self.grid.n_z, self.grid.n_r], dtype, config.probit_eps,
                                                  name="dequantizer")
            else:
                self.coordinate_standardizer = FrozenStandardizer(3, dtype, name="coordinate_standardizer")
            self.conditional_flow = self._conditional_flow()
            self.encoder = PointEncoder(config, dtype)
            self.latent_flow = [
                RQSCoupling(config.latent_dim, 0, 3, config.latent_hidden, config.latent_layers,
                            config.spline_with(config.latent_bins), seed=config.seed * 1000 + 100 + k, dtype=dtype,
                            name=f"latent_coupling{k}", identity=mask, conditioner="mlp")
                for k, mask in enumerate(config.latent_masks())]
            self.point_flow = [self._point_coupling(k, mask) for k, mask in enumerate(config.point_masks())]
        self.latent_composition = Composition([Step.of(c, conditioned=True) for c in self.latent_flow])
        self.point_composition = Composition([Step.of(c, conditioned=True) for c in self.point_flow])

    def _conditional_flow(self) -> AutoregressiveRQSFlow:
        """The MAF-RQS on the two conditionals: zuko transforms in their own orders, or nflows MADEs with random
        permutations between them (`CaloPointFlowConfig.conditional_network`)."""
        c = self.config
        rng = np.random.default_rng(c.mask_seed + 2)
        if c.conditional_network == "zuko":
            orders = c.conditional_orders or [rng.permutation(2) for _ in range(c.conditional_transforms)]
            arrangement = dict(network="zuko", orders=orders)
        else:
            arrangement = dict(permutations=[rng.permutation(2) for _ in range(c.conditional_transforms - 1)])
        return AutoregressiveRQSFlow(
            features=2, context=1, hidden=c.conditional_hidden, num_blocks=c.conditional_transforms, kind="maf",
            made_hidden_blocks=c.conditional_layers - 1, spline=c.spline_with(c.conditional_bins), seed=c.seed + 1,
            dtype=self.dtype, name="conditional_flow", **arrangement)

    def _point_coupling(self, k, mask):
        c = self.config
        spline = c.spline_with(c.point_bins)
        seed = c.seed * 1000 + 200 + 3 * k
        if c.variant == "II":
            return DeepSetCoupling(3, mask, c.point_context, c.point_hidden, c.point_layers, spline, c.set_hidden,
                                   c.set_width, c.summary_hidden, c.summary_dim, seed=seed, dtype=self.dtype,
                                   name=f"point_coupling{k}")
        return RQSCoupling(4, 0, c.point_context, c.point_hidden, c.point_layers, spline, seed=seed, dtype=self.dtype,
                           name=f"point_coupling{k}", identity=mask, conditioner="mlp")

    def _point_kwargs(self, context, segment_ids, n_showers):
        if self.config.variant == "II":
            return dict(conditional_input=context, segment_ids=segment_ids, num_segments=n_showers)
        return dict(conditional_input=context)

    # ----- preprocessing ------------------------------------------------------------------------------
    def _log(self, x):
        return tf.math.log(tf.maximum(x, tf.constant(1e-30, self.dtype)))

    def raw_conditionals(self, showers, incident, uniform):
        """(N, 2) [log(nnz + u) - log(E_inc) / 2, log(E_sum / E_inc)] before standardisation."""
        nnz = tf.cast(tf.math.count_nonzero(showers > 0, axis=-1), self.dtype)
        e_sum = tf.reduce_sum(showers, axis=-1)
        log_incident = self._log(incident[:, 0])
        return tf.stack([self._log(nnz + uniform) - 0.5 * log_incident, self._log(e_sum) - log_incident], axis=-1)

    def _energy_fractions(self, cloud, showers):
        e_sum = tf.reduce_sum(showers, axis=-1)
        return cloud.energies / tf.gather(e_sum, cloud.segment_ids)

    def _raw_value(self, fractions):
        """logit(min-max(fraction)), (P, 1), before standardisation."""
        scaled = tf.clip_by_value(self.value_min_max.forward(fractions[:, None]), 0.0, 1.0)
        return logit_transform(scaled, self.config.logit_eps)

    def _raw_coordinates_i(self, coordinates, uniform):
        """Model I: logit of (z, x, y) after uniform dequantisation and (alpha, r) -> (x, y); (P, 3)."""
        unit = uniform_dequantize(coordinates, uniform, list(self.grid.sizes))
        x, y = polar_to_unit_square(unit[:, 1], unit[:, 2])
        return logit_transform(tf.stack([unit[:, 0], x, y], axis=-1), self.config.logit_eps)

    def preprocess(self, showers_mev, incident_energies_mev, seed):
        """Model inputs of a batch: dict with `incident` (N, 1) E_in', `conditionals` (N, 2), `points` (P, D),
        `segment_ids` (P,), `n_showers`. `seed` (int32[2]) draws the dequantisation noise."""
        showers = tf.cast(showers_mev, self.dtype)
        incident = tf.reshape(tf.cast(incident_energies_mev, self.dtype), [-1, 1])
        seeds = tf.unstack(stateless.split(tf.cast(seed, tf.int32), 2))
        cloud = showers_to_points(showers, self.grid)
        n_showers = tf.shape(showers)[0]
        uniform_n = stateless.uniform([n_showers], seeds[0], dtype=self.dtype)
        conditionals = self.conditional_standardizer.forward(self.raw_conditionals(showers, incident, uniform_n))
        value = self.value_standardizer.forward(self._raw_value(self._energy_fractions(cloud, showers)))
        n_points = tf.shape(cloud.energies)[0]
        if self.config.variant == "II":
            uniform = stateless.uniform([n_points, 2], seeds[1], dtype=self.dtype)
            coordinates = self.dequantizer.forward(tf.gather(cloud.coordinates, [0, 2], axis=-1), uniform)
        else:
            uniform = stateless.uniform([n_points, 3], seeds[1], dtype=self.dtype)
            coordinates = self.coordinate_standardizer.forward(self._raw_coordinates_i(cloud.coordinates, uniform))
        return dict(incident=self.incident_standardizer.forward(self._log(incident)), conditionals=conditionals,
                    points=tf.concat([coordinates, value], axis=-1), segment_ids=cloud.segment_ids,
                    n_showers=n_showers)

    def adapt(self, showers_mev, incident_energies_mev, seed: int = 0, chunk: int = 500) -> None:
        """Measures every preprocessing statistic on training showers (N, V) / energies (N, 1) MeV and freezes it
        (the reference's "epoch 0" statistics)."""
        showers_all = np.asarray(showers_mev, np.float32)
        incident_all = np.asarray(incident_energies_mev, np.float64).reshape(-1, 1)
        rng = np.random.default_rng(seed)
        self.incident_standardizer.adapt(np.log(incident_all))
        conditionals, fractions, coordinates = [], [], []
        for start in range(0, len(showers_all), chunk):
            showers = tf.constant(showers_all[start : start + chunk], self.dtype)
            incident = tf.constant(incident_all[start : start + chunk], self.dtype)
            uniform = tf.constant(rng.uniform(size=len(incident)), self.dtype)
            conditionals.append(self.raw_conditionals(showers, incident, uniform).numpy())
            cloud = showers_to_points(showers, self.grid)
            fractions.append(self._energy_fractions(cloud, showers).numpy())
            coordinates.append(cloud.coordinates.numpy())
        self.conditional_standardizer.adapt(np.concatenate(conditionals))
        fractions, coordinates = np.concatenate(fractions), np.concatenate(coordinates)
        self.value_min_max.adapt(fractions[:, None])
        self.value_standardizer.adapt(self._raw_value(tf.constant(fractions, self.dtype)).numpy())
        if self.config.variant == "II":
            self.dequantizer.adapt(coordinates[:, [0, 2]])
        else:
            uniform = tf.constant(rng.uniform(size=coordinates.shape), self.dtype)
            self.coordinate_standardizer.adapt(self._raw_coordinates_i(coordinates, uniform).numpy())

    # ----- the ELBO -----------------------------------------------------------------------------------
    def elbo_terms(self, showers_mev, incident_energies_mev, seed):
        """The four loss terms of docs/models.md section 4.3, each normalised by its dimension (scalars; the loss is
        their sum).

        `entropy` is -H[q(z|x)] / latent with the exact Gaussian entropy; `points` averages over the points of each
        shower, then over the showers that have points.
        """
        data_seed, latent_seed = tf.unstack(stateless.split(tf.cast(seed, tf.int32), 2))
        inputs = self.preprocess(showers_mev, incident_energies_mev, data_seed)
        context = inputs["incident"]
        cond_nll = -self.conditional_flow.log_prob(inputs["conditionals"], context) / 2.0
        mu, log_var = self.encoder(inputs["points"], inputs["segment_ids"], inputs["n_showers"])
        latent_dim = self.config.latent_dim
        entropy = 0.5 * tf.reduce_sum(1.0 + LOG_2PI + log_var, axis=-1)
        z = mu + tf.exp(0.5 * log_var) * stateless.normal(tf.shape(mu), latent_seed, dtype=self.dtype)
        shower_context = tf.concat([context, inputs["conditionals"]], axis=-1)
        base = self.latent_composition.to_base(z, conditional_input=shower_context)
        prior_nll = -(standard_normal_log_prob(base.output) + base.logdet) / latent_dim
        point_context = tf.gather(tf.concat([shower_context, z], axis=-1), inputs["segment_ids"])
        point_base = self.point_composition.to_base(
            inputs["points"], **self._point_kwargs(point_context, inputs["segment_ids"], inputs["n_showers"]))
        point_log_prob = standard_normal_log_prob(point_base.output) + point_base.logdet
        per_shower = segment_mean(point_log_prob, inputs["segment_ids"], inputs["n_showers"])
        has_points = tf.cast(tf.math.unsorted_segment_sum(tf.ones_like(point_log_prob), inputs["segment_ids"],
                                                          inputs["n_showers"]) > 0, self.dtype)
        points_nll = -tf.reduce_sum(per_shower * has_points) / tf.maximum(tf.reduce_sum(has_points), 1.0)
        return {"conditional": tf.reduce_mean(cond_nll), "entropy": -tf.reduce_mean(entropy) / latent_dim,
                "prior": tf.reduce_mean(prior_nll), "points": points_nll / self.config.point_dim}

    def loss(self, showers_mev, incident_energies_mev, seed):
        """The negative ELBO per dimension (the training loss)."""
        return tf.add_n(list(self.elbo_terms(showers_mev, incident_energies_mev, seed).values()))

    # ----- sampling -----------------------------------------------------------------------------------
    def sample_shower_quantities(self, incident, seed):
        """(context (N, 3), nnz (N,) int32 capped at the voxel count, e_sum (N,)) for E_inc (N, 1) MeV."""
        log_incident = self._log(incident)
        e_context = self.incident_standardizer.forward(log_incident)
        conditionals = self.conditional_flow.sample(e_context, seed)
        raw = self.conditional_standardizer.inverse(conditionals)
        nnz = tf.floor(tf.exp(raw[:, 0] + 0.5 * log_incident[:, 0]))
        nnz = tf.cast(tf.clip_by_value(nnz, 0.0, float(self.grid.n_voxels)), tf.int32)
        e_sum = tf.exp(raw[:, 1] + log_incident[:, 0])
        return tf.concat([e_context, conditionals], axis=-1), nnz, e_sum

    def _fractions_from_values(self, values):
        """Energy fractions (P,) from point values: inverse standardise -> sigmoid -> inverse min-max. Every point
        keeps a fraction of at least 1e-10 (the reference's fractions are >= the training minimum > 0), so a
        sampled point is always a hit."""
        scaled = inverse_logit_transform(self.value_standardizer.inverse(values[:, None]), self.config.logit_eps)
        return tf.maximum(self.value_min_max.inverse(scaled)[:, 0], tf.constant(_MIN_FRACTION, self.dtype))

    def _sample_points(self, shower_context, segment_ids, n_showers, seed):
        """Point-flow samples (P, D) for the showers of `segment_ids`, all points of a shower jointly."""
        context = tf.gather(shower_context, segment_ids)
        noise = stateless.normal(tf.stack([tf.shape(segment_ids)[0], self.config.point_dim]), seed,
                                 dtype=self.dtype)
        return self.point_composition.to_data(noise, **self._point_kwargs(context, segment_ids, n_showers)).output

    @staticmethod
    def _rescaled(showers, e_sum):
        """Showers scaled so that each sums to e_sum exactly; a shower without energy stays all zero."""
        total = tf.reduce_sum(showers, axis=-1, keepdims=True)
        safe = tf.where(total > 0, total, tf.ones_like(total))
        return tf.where(total > 0, showers / safe * e_sum[:, None], tf.zeros_like(showers))

    def _decode_ii(self, points, segment_ids, n_showers, seed):
        z_r = self.dequantizer.inverse(points[:, :2])
        alpha = assign_alpha(segment_ids, z_r[:, 0], z_r[:, 1], self.grid.n_alpha, seed,
                             self.grid.n_z * self.grid.n_r, self.grid.n_r)
        coordinates = tf.stack([z_r[:, 0], alpha, z_r[:, 1]], axis=-1)
        return points_to_showers(coordinates, self._fractions_from_values(points[:, 2]), segment_ids, n_showers,
                                 self.grid)

    def _decode_coordinates_i(self, points):
        unit = inverse_logit_transform(self.coordinate_standardizer.inverse(points[:, :3]), self.config.logit_eps)
        alpha, r = unit_square_to_polar(unit[:, 1], unit[:, 2])
        unit = tf.stack([unit[:, 0], alpha, tf.minimum(r, 1.0 - 1e-6)], axis=-1)
        return uniform_quantize(unit, list(self.grid.sizes))

    def _sample_i(self, shower_context, nnz, n_showers, seed):
        """Model I: rounds of points until every shower has `nnz` distinct cells (or `max_rounds`); a later point
        in an occupied cell overwrites the earlier one. Returns the energy fractions (N, V)."""
        n_voxels = self.grid.n_voxels
        flat_size = n_showers * n_voxels

        def body(round_index, values, occupied):
            filled = tf.reduce_sum(tf.reshape(tf.cast(occupied, tf.int32), [-1, n_voxels]), axis=-1)
            deficit = tf.maximum(nnz - filled, 0)
            segment_ids = segment_ids_from_counts(deficit)
            points = self._sample_points(shower_context, segment_ids, n_showers,
                                         stateless.fold_in(seed, round_index))
            c = self._decode_coordinates_i(points)
            voxel = c[:, 0] * (self.grid.n_alpha * self.grid.n_r) + c[:, 1] * self.grid.n_r + c[:, 2]
            flat = segment_ids * n_voxels + voxel
            unique, index = tf.unique(flat)
            last = tf.math.unsorted_segment_max(tf.range(tf.shape(flat)[0]), index, tf.shape(unique)[0])
            fractions = tf.gather(self._fractions_from_values(points[:, 3]), last)
            values = tf.tensor_scatter_nd_update(values, unique[:, None], fractions)
            occupied = tf.tensor_scatter_nd_update(occupied, unique[:, None], tf.ones_like(unique, tf.bool))
            return round_index + 1, values, occupied

        def missing(round_index, values, occupied):
            filled = tf.reduce_sum(tf.reshape(tf.cast(occupied, tf.int32), [-1, n_voxels]), axis=-1)
            return tf.logical_and(round_index < self.config.max_rounds, tf.reduce_any(filled < nnz))

        _, values, _ = tf.while_loop(missing, body, (tf.constant(0), tf.zeros([flat_size], self.dtype),
                                                     tf.zeros([flat_size], tf.bool)))
        return tf.reshape(values, [-1, n_voxels])

    def sample_showers(self, incident_energies, seed):
        """Showers (N, V) float32 MeV for E_inc (N, 1) MeV: conditionals -> latent -> points -> voxels, each shower
        rescaled to its sampled energy sum (docs/models.md section 4.4)."""
        seed = tf.convert_to_tensor(seed, tf.int32)
        incident = tf.reshape(tf.cast(incident_energies, self.dtype), [-1, 1])
        seeds = tf.unstack(stateless.split(seed, 4))
        context, nnz, e_sum = self.sample_shower_quantities(incident, seeds[0])
        n_showers = tf.shape(incident)[0]
        noise = stateless.normal(tf.stack([n_showers, self.config.latent_dim]), seeds[1], dtype=self.dtype)
        z = self.latent_composition.to_data(noise, conditional_input=context).output
        shower_context = tf.concat([context, z], axis=-1)
        if self.config.variant == "II":
            segment_ids = segment_ids_from_counts(nnz)
            points = self._sample_points(shower_context, segment_ids, n_showers, seeds[2])
            showers = self._decode_ii(points, segment_ids, n_showers, seeds[3])
        else:
            showers = self._sample_i(shower_context, nnz, n_showers, seeds[2])
        return tf.cast(self._rescaled(showers, e_sum), tf.float32)
