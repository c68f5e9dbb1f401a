"""Inductive CaloFlow (iCaloFlow) for CaloChallenge datasets 2 and 3 (Buckley, Krause, Pang, Shih; arXiv:2305.11934).

Three conditional flows, each 8 MADE-RQS blocks with global reverse/random permutations between them:

- Flow-1 (`energy_flow`): the 45 layer energies, logit(E_k / 6.5e4 MeV), given log10(E_inc / MeV) - 4.5
  (or, with `energy_variables="fractions"`, CaloFlow's energy fractions in logit space);
- Flow-2 (`first_layer_flow`): the voxels of layer 0, normalised to unit sum, in logit space, given
  [log10 E_inc - 4.5, logit(E_0 / 6.5e4) / 4];
- Flow-3 (`layer_flow`): one flow shared by layers n = 1..44, given [log10 E_inc - 4.5, logit(E_n / 6.5e4),
  logit(E_{n-1} / 6.5e4), logit of the noisy normalised layer n-1 (or its log-compressed shares), one_hot(n-1, 44)].

Showers are generated inductively: layer 0 from Flow-2, then layer n from Flow-3 given the generated layer n-1.
The teacher's Flow-2/Flow-3 are MAFs (one-pass density), the student's IAFs distilled from them (one-pass
sampling); Flow-1 is a MAF in both, the student reusing the teacher's. Constants: docs/models.md section 3.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from calozoo import stateless
from calozoo.bijectors.autoregressive_flow import AutoregressiveRQSFlow
from calozoo.bijectors.layerwise_permutation import alternating_permutations
from calozoo.bijectors.rq_spline import SplineSettings
from calozoo.data.geometry import load_geometry
from calozoo.models._config import FlowConfig
from calozoo.models.base import ShowerGenerator
from calozoo.preprocessing import (
    ENERGY_VARIABLES,
    from_energy_variables,
    inverse_logit_transform,
    layer_normalize,
    log_shares,
    logit_transform,
    rescale_rows,
    to_energy_variables,
)

__all__ = ["ICaloFlowConfig", "ICaloFlow", "FLOW_NAMES", "DEQUANTIZATIONS", "ENERGY_VARIABLES",
           "PREVIOUS_SHAPE_CONDITIONS"]

# The three flows, as attributes of ICaloFlow and as keys of the training settings.
FLOW_NAMES = ("energy_flow", "first_layer_flow", "layer_flow")
# How a layer's voxels become continuous fractions: the paper's noise on every voxel, or empty voxels filled
# up to the generation threshold (see ICaloFlow.shape_fractions).
DEQUANTIZATIONS = ("uniform", "below_threshold", "log_normal")
# How Flow-3 sees layer n-1: the paper's noisy shape logit, or its noiseless compressed shares (see
# ICaloFlow.previous_shape).
PREVIOUS_SHAPE_CONDITIONS = ("logit", "log_shares")


@dataclasses.dataclass(frozen=True)
class ICaloFlowConfig(FlowConfig):
    """Everything that defines an iCaloFlow model; the defaults are the DS2 teacher of the paper.

    `layer_made_hidden_blocks=None` means the paper's 4 - dataset (2 for DS2, 1 for DS3). A student's
    `energy_hidden` must equal its teacher's: the student reuses the teacher's Flow-1.
    """

    family_label = "iCaloFlow"
    datasets = ("2", "3")

    dataset: str = "2"
    role: str = "teacher"  # "teacher" (MAF Flow-2/3) or "student" (IAF Flow-2/3)
    energy_hidden: int = 256
    first_layer_hidden: int = 256
    layer_hidden: int = 256
    num_blocks: int = 8
    energy_made_hidden_blocks: int = 1
    first_layer_made_hidden_blocks: int = 2
    layer_made_hidden_blocks: int | None = None
    num_bins: int = 8
    tail_bound: float = 14.0
    min_bin: float = 1e-6
    dropout: float = 0.0
    energy_unit_mev: float = 6.5e4
    noise_mev: float = 5e-3
    incident_energy_offset: float = 4.5
    first_layer_energy_scale: float = 0.25
    logit_alpha: float = 1e-6
    threshold_mev: float = 1.5e-2
    renormalize_layers: bool = False  # the paper: False (a layer's fractions need not sum to 1)
    dequantization: str = "uniform"  # the paper; or "below_threshold" / "log_normal" (see ICaloFlow.shape_fractions)
    fill_decades: float = 1.5  # "log_normal": empty voxels at threshold x 10^(-fill_decades +- ...)
    fill_width_decades: float = 0.25  # ... + fill_width_decades x a normal truncated at 2 sigma
    occupied_jitter: float = 0.0  # not "uniform": occupied fractions times 1 - U[0, occupied_jitter) in training
    shape_logit_alpha: float | None = None  # the voxel fractions' logit alpha (Flow-2/3); None: `logit_alpha`
    shape_tail_bound: float | None = None  # Flow-2/3's spline tail bound; None: `tail_bound`
    energy_variables: str = "layers"  # the paper; or "fractions" / "shares" (see ICaloFlow.energy_flow_inputs)
    energy_fraction_factor: float = 2.0  # f of "fractions" (DS2 and DS3 reach E_tot / E_inc = 1.30)
    layer_context_skip: bool = False  # not in the paper: Flow-3's voxel i also sees voxel i of layer n-1 directly
    shape_context_units: int = 0  # not in the paper: Flow-2/3 MADE units that see only the condition (see MADE)
    previous_shape_condition: str = "logit"  # the paper; or "log_shares" (see ICaloFlow.previous_shape)
    permutation_seed: int = 0
    seed: int = 0
    dtype: str = "float64"

    def __post_init__(self):
        self.check_dataset_and_role()
        if self.layer_made_hidden_blocks is None:
            object.__setattr__(self, "layer_made_hidden_blocks", 4 - int(self.dataset))
        if self.num_blocks < 1:
            raise ValueError(f"`num_blocks` must be >= 1; got {self.num_blocks}.")
        if self.dequantization not in DEQUANTIZATIONS:
            raise ValueError(f"`dequantization` must be one of {list(DEQUANTIZATIONS)}; got '{self.dequantization}'.")
        jitter_misses = self.occupied_jitter and (self.dequantization == "uniform" or not self.renormalize_layers)
        if not 0.0 <= self.occupied_jitter < 1.0 or jitter_misses:
            raise ValueError("`occupied_jitter` must lie in [0, 1) and needs dequantization 'log_normal' or "
                             "'below_threshold' with renormalize_layers (which undoes the shrink at generation); "
                             f"got {self.occupied_jitter} with '{self.dequantization}', "
                             f"renormalize_layers={self.renormalize_layers}.")
        if self.previous_shape_condition not in PREVIOUS_SHAPE_CONDITIONS:
            raise ValueError(f"`previous_shape_condition` must be one of {list(PREVIOUS_SHAPE_CONDITIONS)}; "
                             f"got '{self.previous_shape_condition}'.")
        if self.energy_variables not in ENERGY_VARIABLES:
            raise ValueError(f"`energy_variables` must be one of {list(ENERGY_VARIABLES)}; "
                             f"got '{self.energy_variables}'.")
        if isinstance(self.energy_fraction_factor, (str, bool)) or not self.energy_fraction_factor > 0:
            raise ValueError("`energy_fraction_factor` must be a positive number; "
                             f"got {self.energy_fraction_factor!r}.")
        narrowest = min(self.first_layer_hidden, self.layer_hidden)
        if isinstance(self.shape_context_units, bool) or not 0 <= self.shape_context_units < narrowest:
            raise ValueError(f"`shape_context_units` must lie in [0, {narrowest}) (the Flow-2/3 widths); "
                             f"got {self.shape_context_units!r}.")
        alpha = self.shape_logit_alpha
        if alpha is not None and (isinstance(alpha, (str, bool)) or not 0.0 < alpha < 0.5):
            raise ValueError(f"`shape_logit_alpha` must be a number in (0, 0.5) or null; got {alpha!r}.")

    @property
    def n_layers(self) -> int:
        return len(load_geometry(self.dataset).layer_sizes)

    @property
    def shape_alpha(self) -> float:
        """The logit alpha of the voxel fractions (Flow-2/3 inputs and conditions, generation).

        A smaller alpha than Flow-1's keeps the empty-voxel band of `dequantization="log_normal"` apart from the
        15 keV cut in layers of several GeV, where fill / E_n falls below 1e-6 and logit(1e-6 + x) flattens; its
        logit then spans about +-log(1 / alpha), which `shape_tail_bound` must cover.
        """
        return self.logit_alpha if self.shape_logit_alpha is None else self.shape_logit_alpha

    @property
    def shape_spline(self) -> SplineSettings:
        """The RQS of Flow-2/3: `spline` with `shape_tail_bound` when one is set."""
        if self.shape_tail_bound is None:
            return self.spline
        return SplineSettings(**{**self.spline.as_dict(), "tail_bound": self.shape_tail_bound})

    @property
    def layer_size(self) -> int:
        return load_geometry(self.dataset).layer_sizes[0]

    @property
    def layer_bins(self) -> tuple[int, int]:
        """(n_alpha, n_r) of every layer (DS2 and DS3 bin all layers alike)."""
        layer = load_geometry(self.dataset).layers[0]
        return layer.n_alpha, layer.n_r

    def flow_shapes(self) -> dict[str, dict]:
        """Per flow: features, context, hidden and MADE depth, from the geometry (nothing is built)."""
        n_layers, size = self.n_layers, self.layer_size
        return {
            "energy_flow": dict(features=n_layers + (self.energy_variables == "shares"), context=1,
                                hidden=self.energy_hidden,
                                made_hidden_blocks=self.energy_made_hidden_blocks),
            "first_layer_flow": dict(features=size, context=2, hidden=self.first_layer_hidden,
                                     made_hidden_blocks=self.first_layer_made_hidden_blocks),
            "layer_flow": dict(features=size, context=3 + size + (n_layers - 1), hidden=self.layer_hidden,
                               made_hidden_blocks=self.layer_made_hidden_blocks,
                               feature_context=self.layer_context_skip),
        }

    def expected_num_params(self) -> dict[str, int]:
        """Trainable parameters per flow and their `total`, from the layer shapes, without building anything."""
        counts = {
            name: AutoregressiveRQSFlow.expected_num_params(
                shape["features"], shape["context"], shape["hidden"], self.num_blocks, self.num_bins,
                shape["made_hidden_blocks"], feature_context=shape.get("feature_context", False))
            for name, shape in self.flow_shapes().items()
        }
        counts["total"] = sum(counts.values())
        return counts


class ICaloFlow(ShowerGenerator):
    """An iCaloFlow generator: Flow-1 (layer energies) -> Flow-2 (layer 0) -> Flow-3 (layers 1..44, inductively).

    Example:
        >>> config = ICaloFlowConfig(role="student", energy_hidden=8, first_layer_hidden=8, layer_hidden=8)
        >>> ICaloFlow(config).generate([1024.0, 65536.0], seed=1).shape
        (2, 6480)
    """

    log_prob_space = "Flow-1 + Flow-2 + 44 Flow-3 terms, logit space"
    # Slices of 250 showers (benchmarks/micro_batch_scan.json, paper size, one core): 15.7 ms per shower, against
    # 16.7 in slices of 100 and 17.1 in slices of 500.
    micro_batch = 250

    def __init__(self, config: ICaloFlowConfig, name: str | None = None):
        super().__init__(config.dataset, name=name or "icaloflow")
        self.config = config
        self.dtype = tf.as_dtype(config.dtype)
        self.n_layers, self.layer_size = config.n_layers, config.layer_size
        kinds = {"energy_flow": "maf", "first_layer_flow": "maf" if config.role == "teacher" else "iaf"}
        kinds["layer_flow"] = kinds["first_layer_flow"]
        with self.name_scope:
            for index, (flow_name, shape) in enumerate(config.flow_shapes().items()):
                shape = dict(shape)
                # Flow-3's condition holds layer n-1's shape logit in columns 3 .. 3 + layer_size
                skip = shape.pop("feature_context", False)
                flow = AutoregressiveRQSFlow(
                    **shape,
                    feature_context=3 + np.arange(self.layer_size) if skip else None,
                    context_units=0 if flow_name == "energy_flow" else config.shape_context_units,
                    num_blocks=config.num_blocks,
                    kind=kinds[flow_name],
                    permutations=alternating_permutations([shape["features"]], config.num_blocks,
                                                          config.permutation_seed + index),
                    dropout=config.dropout,
                    spline=config.spline if flow_name == "energy_flow" else config.shape_spline,
                    seed=config.seed + 7 * index,
                    dtype=self.dtype,
                    name=flow_name,
                )
                setattr(self, flow_name, flow)

    @property
    def has_density(self) -> bool:
        return self.config.role == "teacher"

    # ----- conditions and inputs, from raw MeV quantities ----------------------------------------
    def incident_condition(self, incident_mev):
        """log10(E_inc / MeV) - 4.5, (N, 1)."""
        return tf.math.log(incident_mev) / np.log(10.0) - self.config.incident_energy_offset

    def energy_logit(self, energies_mev):
        """logit_alpha(E / 6.5e4 MeV); E / 6.5e4 is clipped to [0, 1] (a no-op on DS2/DS3, whose largest layer
        energies are 64 172.6 and 63 606.5 MeV)."""
        fraction = tf.clip_by_value(energies_mev / self.config.energy_unit_mev, 0.0, 1.0)
        return logit_transform(fraction, self.config.logit_alpha)

    def _noisy(self, values, seed):
        """values + U[0, noise_mev) (MeV), independently per entry; with `seed=None` + the noise's mean instead
        (the deterministic inputs of `log_prob_graph`)."""
        if seed is None:
            return values + 0.5 * self.config.noise_mev
        return values + stateless.uniform(tf.shape(values), seed, 0.0, self.config.noise_mev, self.dtype)

    @staticmethod
    def _split(seed, count):
        """`count` independent seeds from one, or `count` Nones for the deterministic path."""
        if seed is None:
            return [None] * count
        return tf.unstack(stateless.split(seed, count))

    def shape_fractions(self, layer_mev, seed):
        """A layer (N, layer_size) MeV as continuous voxel fractions in [0, 1].

        `dequantization="uniform"` (the paper): U[0, noise_mev) added to every voxel, then divided by the noisy
        layer sum. `"below_threshold"`: only empty voxels are dequantised, by U[0, threshold) MeV, the band that
        generation's cut maps back to empty, so "empty" is a region the flow must land in rather than a narrow
        peak it must hit; occupied voxels keep their energy and are divided by the layer's true energy (at least
        the threshold), so the occupied fractions sum to 1. `occupied_jitter` > 0 then shrinks each occupied
        fraction by an independent U[0, occupied_jitter) share, so that a layer's fractions no longer lie on the
        simplex (a one-hit layer is not a point mass at fraction 1); generation's rescaling to E_n undoes it on
        average. `seed=None` uses the noise's mean.
        """
        if self.config.dequantization == "uniform":
            return layer_normalize(self._noisy(layer_mev, seed), [self.layer_size])
        threshold = self.config.threshold_mev
        jitter = self.config.occupied_jitter
        if jitter > 0 and seed is not None:
            seed, jitter_seed = self._split(seed, 2)
        if self.config.dequantization == "log_normal":
            spread = 0.0 if seed is None else stateless.truncated_normal(tf.shape(layer_mev), seed,
                                                                         dtype=self.dtype)
            fill = threshold * tf.pow(tf.constant(10.0, self.dtype),
                                      -self.config.fill_decades + self.config.fill_width_decades * spread)
        elif seed is None:
            fill = tf.fill(tf.shape(layer_mev), tf.constant(0.5 * threshold, self.dtype))
        else:
            fill = stateless.uniform(tf.shape(layer_mev), seed, 0.0, threshold, self.dtype)
        total = tf.maximum(tf.reduce_sum(layer_mev, axis=-1, keepdims=True), threshold)
        occupied = layer_mev / total
        if jitter > 0:
            shrink = (0.5 * jitter if seed is None
                      else stateless.uniform(tf.shape(layer_mev), jitter_seed, 0.0, jitter, self.dtype))
            occupied = occupied * (1.0 - shrink)
        return tf.minimum(tf.where(layer_mev > 0, occupied, fill / total), 1.0)

    def shape_logit(self, layer_mev, seed):
        """The layer's dequantised voxel fractions (`shape_fractions`) in logit space, (N, layer_size)."""
        return logit_transform(self.shape_fractions(layer_mev, seed), self.config.shape_alpha)

    def previous_shape(self, layer_mev, seed):
        """Layer n-1 (N, layer_size) MeV as Flow-3 sees it, (N, layer_size).

        `previous_shape_condition="logit"` (the paper): its noisy shape logit (`shape_logit`), the same variables
        as the flow's input. `"log_shares"`: each voxel's share of the layer, log-compressed (`log_shares`: 0 for
        an empty voxel, 1 for all of the layer). With a dequantised empty band (`dequantization="log_normal"`)
        every empty voxel's logit carries about a decade of noise, and summed over DS3's 900 voxels that noise
        drowns the rest of the condition (the layer index, E_n); the shares carry none.
        """
        if self.config.previous_shape_condition == "logit":
            return self.shape_logit(layer_mev, seed)
        return log_shares(layer_mev, tf.constant(self.config.threshold_mev, layer_mev.dtype))

    def energy_flow_inputs(self, layer_energies_mev, incident_mev, seed):
        """Flow-1 (x, c): the noisy layer energies (N, 45) in logit space, and log10 E_inc - 4.5 (N, 1).

        `energy_variables="layers"` (the paper): logit(E_k / 6.5e4 MeV). The other two put E_tot / E_inc, which a
        classifier reads at the percent level, in one variable of the flow, u_0 = E_tot / (f E_inc), instead of
        leaving it to a sum of 45 noisy ones: `"fractions"` (CaloFlow's u-space) follows it with the recursive
        fractions E_k / sum_{j>=k} E_j; `"shares"` with each layer's share E_k / E_tot (46 variables), which
        generation divides by their sum, so that no layer is what is left after the others.
        """
        noisy = self._noisy(layer_energies_mev, seed)
        c = self.config
        values = to_energy_variables(c.energy_variables, noisy, tf.cast(incident_mev, noisy.dtype), c.energy_unit_mev,
                                     c.energy_fraction_factor)
        return logit_transform(values, c.logit_alpha), self.incident_condition(incident_mev)

    def first_layer_condition(self, incident_mev, first_layer_energy_mev):
        """[log10 E_inc - 4.5, logit(E_0 / 6.5e4) / 4], (N, 2); E_0 (N, 1)."""
        scaled = self.energy_logit(first_layer_energy_mev) * self.config.first_layer_energy_scale
        return tf.concat([self.incident_condition(incident_mev), scaled], axis=-1)

    def first_layer_inputs(self, layer_mev, incident_mev, seed):
        """Flow-2 (x, c) from the raw layer 0 (N, layer_size) MeV; shape and E_0 get independent noise."""
        shape_seed, energy_seed = self._split(seed, 2)
        energy = self._noisy(tf.reduce_sum(layer_mev, axis=-1, keepdims=True), energy_seed)
        return self.shape_logit(layer_mev, shape_seed), self.first_layer_condition(incident_mev, energy)

    def layer_condition(self, incident_mev, energy_mev, previous_energy_mev, previous_shape, layer_index):
        """Flow-3 condition [log10 E_inc - 4.5, logit(E_n/6.5e4), logit(E_{n-1}/6.5e4), layer n-1's shape
        (`previous_shape`), one_hot(n - 1, 44)]; energies (N, 1), layer_index (N,) integers in 1..44."""
        one_hot = tf.one_hot(tf.cast(layer_index, tf.int32) - 1, self.n_layers - 1, dtype=self.dtype)
        return tf.concat([self.incident_condition(incident_mev), self.energy_logit(energy_mev),
                          self.energy_logit(previous_energy_mev), previous_shape, one_hot], axis=-1)

    def layer_inputs(self, layer_mev, previous_layer_mev, incident_mev, layer_index, seed):
        """Flow-3 (x, c) from raw layers n and n-1 (N, layer_size) MeV; every noisy quantity has its own noise."""
        seeds = self._split(seed, 4)
        energy = self._noisy(tf.reduce_sum(layer_mev, axis=-1, keepdims=True), seeds[0])
        previous_energy = self._noisy(tf.reduce_sum(previous_layer_mev, axis=-1, keepdims=True), seeds[1])
        condition = self.layer_condition(incident_mev, energy, previous_energy,
                                         self.previous_shape(previous_layer_mev, seeds[2]), layer_index)
        return self.shape_logit(layer_mev, seeds[3]), condition

    def preprocess(self, showers_mev, incident_energies_mev, seed: int | None):
        """Training inputs of the three flows from showers (N, V) and incident energies (N, 1) in MeV.

        TensorFlow ops only; `seed=None` adds the noise's mean instead of a draw (see `log_prob_graph`).

        Returns:
            dict with `energy_flow_x` (N, 45), `energy_flow_c` (N, 1), `first_layer_flow_x` (N, L),
            `first_layer_flow_c` (N, 2), `layer_flow_x` (44 N, L) and `layer_flow_c` (44 N, 3 + L + 44);
            the Flow-3 rows are shower-major (shower 0 layers 1..44, shower 1 ...).
        """
        layers = tf.reshape(tf.cast(tf.cast(showers_mev, tf.float64), self.dtype), [-1, self.n_layers, self.layer_size])
        incident = tf.reshape(tf.cast(tf.cast(incident_energies_mev, tf.float64), self.dtype), [-1, 1])
        seeds = self._split(None if seed is None else tf.constant([int(seed), 29], tf.int64), 3)
        inputs = {}
        inputs["energy_flow_x"], inputs["energy_flow_c"] = self.energy_flow_inputs(
            tf.reduce_sum(layers, axis=-1), incident, seeds[0])
        inputs["first_layer_flow_x"], inputs["first_layer_flow_c"] = self.first_layer_inputs(
            layers[:, 0], incident, seeds[1])
        later = self.n_layers - 1
        inputs["layer_flow_x"], inputs["layer_flow_c"] = self.layer_inputs(
            tf.reshape(layers[:, 1:], [-1, self.layer_size]), tf.reshape(layers[:, :-1], [-1, self.layer_size]),
            tf.repeat(incident, later, axis=0), tf.tile(tf.range(1, self.n_layers), [tf.shape(layers)[0]]), seeds[2])
        return inputs

    # ----- generation ---------------------------------------------------------------------------
    def _cut(self, energies_mev):
        """Values below the threshold (15 keV) set to 0."""
        return tf.where(energies_mev < self.config.threshold_mev, tf.zeros_like(energies_mev), energies_mev)

    def _layer_from_logits(self, logits, energy_mev):
        """Flow-2/3 output -> layer in MeV: clamped inverse logit times E_n, then the cut.

        The paper does not renormalise: a layer sums to E_n only as far as the flow learned fractions summing to 1.
        `renormalize_layers=True` divides the fractions by their sum first, so every layer carries Flow-1's E_n
        (before the cut); small models trained on few showers need it. A layer whose fractions sum to less than
        the logit's alpha (the preprocessing's resolution) is left empty rather than inflated from rounding residue.
        With `dequantization="below_threshold"` the fill below the threshold is not part of the layer's energy:
        the cut comes first and the voxels left are rescaled to sum to E_n.
        """
        fractions = inverse_logit_transform(logits, self.config.shape_alpha, clamp=True)
        if self.config.dequantization != "uniform":
            layer = self._cut(fractions * energy_mev)
            return rescale_rows(layer, energy_mev, 0.0) if self.config.renormalize_layers else layer
        if self.config.renormalize_layers:
            fractions = rescale_rows(fractions, 1.0, self.config.shape_alpha)
        return self._cut(fractions * energy_mev)

    def sample_layer_energies(self, incident_mev, seed):
        """Layer energies (N, 45) MeV from Flow-1 for E_inc (N, 1) MeV, values below 15 keV set to 0."""
        logits = self.energy_flow.sample(self.incident_condition(incident_mev), seed)
        return self.layer_energies_from_logits(logits, incident_mev)

    def layer_energies_from_logits(self, logits, incident_mev):
        """Flow-1's variables (the inverse of `energy_flow_inputs`' x) -> layer energies (N, 45) MeV, cut at 15 keV."""
        c = self.config
        values = inverse_logit_transform(logits, c.logit_alpha, clamp=True)
        return self._cut(from_energy_variables(c.energy_variables, values, incident_mev, c.energy_unit_mev,
                                               c.energy_fraction_factor))

    def _next_layer(self, previous_layer, incident, energies, index, seed):
        """Layer `index` (a scalar tensor in 1..44) given the generated layer index - 1 and Flow-1's energies."""
        noise_seed, flow_seed = tf.unstack(stateless.split(seed, 2))
        energy = tf.gather(energies, [index], axis=1)
        previous_energy = tf.gather(energies, [index - 1], axis=1)
        previous_shape = self.previous_shape(previous_layer, noise_seed)
        condition = self.layer_condition(incident, energy, previous_energy, previous_shape,
                                         tf.fill(tf.shape(incident)[:1], index))
        return self._layer_from_logits(self.layer_flow.sample(condition, flow_seed), energy)

    def sample_showers(self, incident_energies, seed):
        """Showers (N, V) float32 MeV for E_inc (N, 1) MeV: Flow-1, then layer 0 from Flow-2, then layers 1..44
        one after the other from Flow-3 (a `tf.while_loop`, so the graph holds Flow-3 once)."""
        seed = tf.convert_to_tensor(seed, tf.int32)
        incident = tf.cast(incident_energies, self.dtype)
        energy_seed, first_seed, layers_seed = tf.unstack(stateless.split(seed, 3))
        energies = self.sample_layer_energies(incident, energy_seed)
        first_logits = self.first_layer_flow.sample(self.first_layer_condition(incident, energies[:, :1]), first_seed)
        first_layer = self._layer_from_logits(first_logits, energies[:, :1])
        layers = tf.TensorArray(self.dtype, size=self.n_layers, element_shape=first_layer.shape)

        def body(index, previous_layer, layers):
            layer_seed = stateless.fold_in(layers_seed, index)
            layer = self._next_layer(previous_layer, incident, energies, index, layer_seed)
            return index + 1, layer, layers.write(index, layer)

        _, _, layers = tf.while_loop(lambda index, *_: index < self.n_layers, body,
                                     (tf.constant(1), first_layer, layers.write(0, first_layer)))
        showers = tf.reshape(tf.transpose(layers.stack(), [1, 0, 2]), [-1, self.n_layers * self.layer_size])
        return tf.cast(showers, tf.float32)

    # ----- density ------------------------------------------------------------------------------
    def log_prob(self, showers, incident_energies, seed: int = 0):
        """log p per shower: Flow-1 + Flow-2 + the 44 Flow-3 terms, in the preprocessed (logit) coordinates.

        Only teachers have a one-pass density; a student's would need D sequential passes per block.
        """
        return self._preprocessed_log_prob(self.preprocess(showers, incident_energies, seed))

    def log_prob_graph(self, showers, incident_energies):
        """`log_prob` with every noise term replaced by its mean: deterministic, row by row (the SavedModel's
        `log_prob` signature, see calozoo.export)."""
        return self._preprocessed_log_prob(self.preprocess(showers, incident_energies, None))

    def _preprocessed_log_prob(self, inputs):
        if not self.has_density:
            raise NotImplementedError("iCaloFlow students have no one-pass density; use the teacher for log_prob.")
        layer_terms = self.layer_flow.log_prob(inputs["layer_flow_x"], inputs["layer_flow_c"])
        return (self.energy_flow.log_prob(inputs["energy_flow_x"], inputs["energy_flow_c"])
                + self.first_layer_flow.log_prob(inputs["first_layer_flow_x"], inputs["first_layer_flow_c"])
                + tf.reduce_sum(tf.reshape(layer_terms, [-1, self.n_layers - 1]), axis=-1))
