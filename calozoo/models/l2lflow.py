"""Convolutional L2LFlows for CaloChallenge datasets 2 and 3 (Buss, Gaede, Kasieczka, Krause, Shih;
arXiv:2405.20407). Spec and constants: docs/models.md section 6.

- The energy flow: a MAF-RQS on the 45 layer energies, logit(E_k / 63.6065 GeV), given 2 log10(E_inc/GeV) - 3.
- The layer flows: Glow-style flows on each layer image (r x alpha; calozoo.bijectors.conv_flow) conditioned
  on the transformed images of up to five previous layers, the layer energy and the incident energy, as
  image channels. `layer_flows="causal"` builds the paper's 45 separate flows (layer 0 without a context
  embedding); `layer_flows="shared"` builds ONE flow for all layers, told the layer by a one-hot layer
  embedding (45 more context channels, absent previous layers as zeros): 45x fewer parameters, which is what
  keeps a shipped artifact small.

Generation (docs/models.md section 6.4): layer energies from the energy flow, resampled while sum(E_k) / E_inc > veto
(2.6); then layer by layer, each conditioned on the samples of the previous ones; finally the voxel
transform is inverted for all layers and voxels below 15.15 keV are set to 0. Units inside are GeV.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from calozoo import stateless
from calozoo.bijectors.autoregressive_flow import AutoregressiveRQSFlow
from calozoo.bijectors.conv_flow import ConvLayerFlow
from calozoo.bijectors.rq_spline import SplineSettings
from calozoo.data.geometry import load_geometry
from calozoo.models._config import FlowConfig
from calozoo.models.base import ShowerGenerator
from calozoo.preprocessing import (
    energies_from_shares,
    energy_shares,
    inverse_logit_transform,
    keep_filled_rows,
    logit_transform,
    rescale_rows,
)

__all__ = ["L2LFlowConfig", "L2LFlow", "LAYER_FLOW_MODES"]

LAYER_FLOW_MODES = ("causal", "shared")
# Per dataset: the squeeze factors (r, alpha) and the U-Net's down-sampling factors of the squeezed image.
_DEFAULT_SQUEEZE = {"3": (2, 2), "2": (1, 2)}  # DS3 18 x 50 -> 9 x 25 x 4; DS2 9 x 16 -> 9 x 8 x 2
_DEFAULT_DOWN = {"3": ((3, 5), (3, 5)), "2": ((3, 2), (3, 4))}  # -> 3 x 5 -> 1 x 1; DS2 -> 3 x 4 -> 1 x 1


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _lists(value):
    return [_lists(v) for v in value] if isinstance(value, (list, tuple)) else value


@dataclasses.dataclass(frozen=True)
class L2LFlowConfig(FlowConfig):
    """Everything that defines a ConvL2LFlow model; the defaults are the paper's DS3 configuration.

    `squeeze=None` / `down_factors=None` take the dataset's defaults (DS3 (2, 2) / ((3, 5), (3, 5)); DS2,
    whose 9 radial bins are odd, (1, 2) / ((3, 2), (3, 4))). `num_bins`, `tail_bound`, `min_bin` are the
    coupling splines' (K 10, B 15, 1e-3), `energy_*` the energy flow's (K 8, B -ln 1e-6, 1e-6).
    """

    family_label = "L2LFlow"
    datasets = ("2", "3")

    dataset: str = "3"
    layer_flows: str = "causal"  # "causal": 45 flows (paper); "shared": one flow with a layer embedding
    squeeze: tuple | None = None
    down_factors: tuple | None = None
    num_blocks: int = 8
    hidden: int = 32
    embedding_channels: int = 8
    previous_layers: int = 5
    num_bins: int = 10
    tail_bound: float = 15.0
    min_bin: float = 1e-3
    energy_hidden: int = 64
    energy_blocks: int = 6
    energy_made_hidden_blocks: int = 1
    energy_num_bins: int = 8
    energy_tail_bound: float = 13.815510557964274  # -ln(1e-6)
    energy_min_bin: float = 1e-6
    energy_scale_gev: float = 0.015721663736  # 1 / 63.6065 GeV, the largest DS3 layer energy
    energy_noise_mean_gev: float = 1e-6
    energy_noise_std_gev: float = 2e-7
    energy_logit_alpha: float = 1e-6
    voxel_noise_gev: float = 1e-6
    cut_gev: float = 1.515e-5
    empty_below_gev: float = 1e-8
    fill_log10_mean: float = -6.0
    fill_log10_std: float = 0.2
    log_offset: float = 1e-7
    log_divisor: float = 7.0
    voxel_logit_alpha: float = 1e-2
    veto: float = 2.6
    # The paper: False (a generated layer sums to the energy flow's E_k only as far as the layer flow learned it);
    # True rescales each layer after the cut to E_k, so the energy flow alone sets the layer energies.
    renormalize_layers: bool = False
    # With renormalize_layers, True makes the energy flow decide alone which layers are empty: a layer is empty
    # exactly when E_k is below the cut, and one whose generated voxels all fall below the cut keeps E_k in its
    # largest voxel (False, as shipped up to l2lflow-ds2-electron v3: such a layer comes out empty).
    keep_filled_layers: bool = False
    # True: the layer flows take the reference's exact forms (`ConvLayerFlow(exact_reference=True)`: LeakyReLU at the
    # U-Net bottleneck, the 1x1 convolutions' permutation on their inputs, the fork's spline slopes), as the paper
    # configurations do; the shipped compact artifacts were trained with calozoo's forms (False).
    reference_forms: bool = False
    # True: the energy flow permutes its input before its first block, as the reference's `MAFlow` does ([Permutation,
    # MADE] per block; an imported checkpoint's first permutation), and has energy_blocks - 1 permutations after its
    # blocks; False (calozoo's trained models): a permutation after each block only.
    energy_input_permutation: bool = False
    # True: the previous layers are context channels oldest first (layer i - P, ..., i - 1), as the reference's data
    # loader and generator stack them (an imported checkpoint); False (calozoo's trained models): newest first.
    previous_oldest_first: bool = False
    max_veto_rounds: int = 20
    # What the energy flow learns (calozoo.preprocessing.ENERGY_VARIABLES): "layers" (the paper) logit(E_k / 63.6 GeV);
    # "shares": E_tot / (f E_inc) and each layer's share E_k / E_tot (46 variables), f = energy_fraction_factor.
    energy_variables: str = "layers"
    energy_fraction_factor: float = 2.0
    permutation_seed: int = 0
    seed: int = 0
    dtype: str = "float32"

    def __post_init__(self):
        if self.dataset not in self.datasets:
            raise ValueError(f"L2LFlow needs dataset '2' or '3'; got '{self.dataset}'.")
        if self.layer_flows not in LAYER_FLOW_MODES:
            raise ValueError(f"`layer_flows` must be 'causal' (45 flows) or 'shared' (one flow with a layer "
                             f"embedding); got '{self.layer_flows}'.")
        if self.num_blocks < 1 or self.hidden < 1 or self.previous_layers < 0:
            raise ValueError(f"`num_blocks` and `hidden` must be >= 1 and `previous_layers` >= 0; got "
                             f"{self.num_blocks}, {self.hidden}, {self.previous_layers}.")
        if self.energy_variables not in ("layers", "shares"):
            raise ValueError(f"`energy_variables` must be 'layers' or 'shares'; got '{self.energy_variables}'.")
        if isinstance(self.energy_fraction_factor, (str, bool)) or not self.energy_fraction_factor > 0:
            raise ValueError("`energy_fraction_factor` must be a positive number; "
                             f"got {self.energy_fraction_factor!r}.")
        object.__setattr__(self, "squeeze", _tuples(self.squeeze or _DEFAULT_SQUEEZE[self.dataset]))
        object.__setattr__(self, "down_factors", _tuples(self.down_factors or _DEFAULT_DOWN[self.dataset]))

    def to_dict(self) -> dict:
        """The config as plain YAML-safe values (lists, not tuples)."""
        return {k: _lists(v) for k, v in dataclasses.asdict(self).items()}

    @property
    def energy_spline(self) -> SplineSettings:
        m = self.energy_min_bin
        return SplineSettings(self.energy_num_bins, self.energy_tail_bound, m, m, m)

    @property
    def n_layers(self) -> int:
        return load_geometry(self.dataset).n_layers

    @property
    def image_shape(self) -> tuple[int, int]:
        """(n_r, n_alpha) of every layer image."""
        layer = load_geometry(self.dataset).layers[0]
        return layer.n_r, layer.n_alpha

    def context_channels(self, layer: int) -> int:
        """Context channels of layer `layer`'s flow: previous layers, E_layer, E_inc (+ the layer one-hot)."""
        if self.layer_flows == "shared":
            return self.previous_layers + 2 + self.n_layers
        return min(self.previous_layers, layer) + 2

    def layer_flow_kwargs(self, layer: int) -> dict:
        """The ConvLayerFlow shape arguments of one layer flow (layer 0 of the causal flows has no embedding)."""
        causal_first = self.layer_flows == "causal" and layer == 0
        return dict(image_shape=self.image_shape, context_channels=self.context_channels(layer),
                    squeeze=self.squeeze, num_blocks=self.num_blocks, hidden=self.hidden,
                    down_factors=self.down_factors, embedding_channels=0 if causal_first else self.embedding_channels)

    @property
    def energy_features(self) -> int:
        """The energy flow's variables: 45 layer energies, or with "shares" E_tot / (f E_inc) and 45 shares."""
        return self.n_layers + (self.energy_variables == "shares")

    def expected_num_params(self) -> dict[str, int]:
        """Trainable parameters of the energy flow, the layer flows and their `total`, without building anything."""
        energy = AutoregressiveRQSFlow.expected_num_params(self.energy_features, 1, self.energy_hidden,
                                                           self.energy_blocks, self.energy_num_bins,
                                                           self.energy_made_hidden_blocks)
        layers = range(1 if self.layer_flows == "shared" else self.n_layers)
        layer_flows = sum(ConvLayerFlow.expected_num_params(**self.layer_flow_kwargs(i), num_bins=self.num_bins)
                          for i in layers)
        return {"energy_flow": energy, "layer_flows": layer_flows, "total": energy + layer_flows}


class L2LFlow(ShowerGenerator):
    """A convolutional L2LFlow generator (energy flow + causal layer flows), see the module docstring.

    Example:
        >>> config = L2LFlowConfig(dataset="2", layer_flows="shared", num_blocks=1, hidden=2, energy_hidden=4,
        ...                        energy_blocks=1)
        >>> L2LFlow(config).generate([1024.0, 65536.0], seed=1).shape
        (2, 6480)
    """

    has_density = True

    def __init__(self, config: L2LFlowConfig, name: str | None = None):
        super().__init__(config.dataset, name=name or "l2lflow")
        self.config = config
        self.dtype = tf.as_dtype(config.dtype)
        self.n_layers = config.n_layers
        self.n_r, self.n_alpha = config.image_shape
        rng = np.random.default_rng(config.permutation_seed)
        permutations = [rng.permutation(config.energy_features) for _ in range(config.energy_blocks)]
        first = permutations.pop(0) if config.energy_input_permutation else None
        with self.name_scope:
            self.energy_flow = AutoregressiveRQSFlow(
                features=config.energy_features, context=1, hidden=config.energy_hidden,
                num_blocks=config.energy_blocks,
                kind="maf", permutations=permutations, input_permutation=first,
                made_hidden_blocks=config.energy_made_hidden_blocks, spline=config.energy_spline, seed=config.seed,
                dtype=self.dtype, name="energy_flow")
            # The per-layer-index voxel maximum over the training set (GeV), set by `set_layer_maxima`.
            self.layer_maxima_gev = tf.Variable(tf.ones([self.n_layers], self.dtype), trainable=False,
                                                name="layer_maxima_gev")
            spline = config.spline
            if config.layer_flows == "shared":
                self.layer_flow = ConvLayerFlow(**config.layer_flow_kwargs(0), spline=spline, seed=config.seed + 1,
                                                dtype=self.dtype, exact_reference=config.reference_forms,
                                                name="layer_flow")
            else:
                self.layer_flows = [ConvLayerFlow(**config.layer_flow_kwargs(i), spline=spline,
                                                  seed=config.seed + 1 + i, dtype=self.dtype,
                                                  exact_reference=config.reference_forms,
                                                  name=f"layer_flow{i:02d}") for i in range(self.n_layers)]

    def flow_for(self, layer: int) -> ConvLayerFlow:
        """The flow that models layer `layer`."""
        return self.layer_flow if self.config.layer_flows == "shared" else self.layer_flows[layer]

    # ----- units and layout ---------------------------------------------------------------------------
    def layers_gev(self, showers_mev):
        """Showers (N, V) MeV -> layer images (N, 45, r, alpha) GeV (the reference's axis swap)."""
        showers = tf.cast(tf.convert_to_tensor(showers_mev), self.dtype) / 1e3
        return tf.transpose(tf.reshape(showers, [-1, self.n_layers, self.n_alpha, self.n_r]), [0, 1, 3, 2])

    def showers_mev(self, layers_gev):
        """Layer images (N, 45, r, alpha) GeV -> showers (N, V) MeV in the CaloChallenge voxel order."""
        showers = tf.transpose(layers_gev, [0, 1, 3, 2]) * 1e3
        return tf.reshape(showers, [-1, self.n_layers * self.n_alpha * self.n_r])

    def set_layer_maxima(self, showers_mev) -> None:
        """Stores the largest voxel energy of each layer index over `showers_mev` (the training set)."""
        layers = np.asarray(showers_mev, np.float64).reshape(-1, self.n_layers, self.n_alpha * self.n_r) / 1e3
        self.layer_maxima_gev.assign(layers.max(axis=(0, 2)).astype(self.dtype.as_numpy_dtype))

    # ----- preprocessing (docs/models.md section 6.1) ----------------------------------------------------
    def incident_condition(self, incident_gev):
        """2 log10(E_inc / GeV + 1e-6) - 3, in [-3, 3] for 1 GeV - 1 TeV."""
        return 2.0 * tf.math.log(incident_gev + 1e-6) / np.log(10.0) - 3.0

    def energy_flow_x(self, layer_energies_gev, incident_gev, seed):
        """logit of the energy variables of (E_k + N(1e-6, 2e-7^2) GeV): clamp(E / 63.6065 GeV) (the paper) or the
        shares (`energy_variables`); E_inc (N, 1) GeV; `seed=None` adds the noise's mean."""
        c = self.config
        if seed is None:
            noise = c.energy_noise_mean_gev
        else:
            noise = stateless.normal(tf.shape(layer_energies_gev), seed, c.energy_noise_mean_gev,
                                     c.energy_noise_std_gev, self.dtype)
        if c.energy_variables == "layers":  # as the reference computes it
            values = tf.clip_by_value((layer_energies_gev + noise) * c.energy_scale_gev, 0.0, 1.0)
        else:
            values = energy_shares(layer_energies_gev + noise, incident_gev, c.energy_fraction_factor)
        return logit_transform(values, c.energy_logit_alpha)

    def layer_energies_from_logits(self, logits, incident_gev):
        """The energy flow's output (the inverse of `energy_flow_x`) -> layer energies (N, 45) GeV."""
        c = self.config
        values = inverse_logit_transform(logits, c.energy_logit_alpha, clamp=True)
        if c.energy_variables == "layers":
            return values / c.energy_scale_gev
        return energies_from_shares(values, incident_gev, c.energy_fraction_factor)

    def energies_after_cut(self, layers_gev):
        """Sum over each layer image (..., r, alpha) of the voxels >= 15.15 keV."""
        kept = tf.where(layers_gev >= self.config.cut_gev, layers_gev, tf.zeros_like(layers_gev))
        return tf.reduce_sum(kept, axis=[-2, -1])

    def noisy_voxels(self, layers_gev, seed):
        """Voxel noise: empty voxels (< 1e-8 GeV) get 10^N(-6, 0.2) GeV, every voxel U[0, 1e-6] GeV, and
        voxels below the cut stay below it. `seed=None`: every draw replaced by its mean (deterministic)."""
        c = self.config
        shape = tf.shape(layers_gev)
        if seed is None:
            fill = tf.fill(shape, tf.constant(10.0**c.fill_log10_mean, self.dtype))
            uniform = 0.5 * c.voxel_noise_gev
        else:
            fill_seed, uniform_seed = tf.unstack(stateless.split(seed, 2))
            fill = 10.0 ** stateless.normal(shape, fill_seed, c.fill_log10_mean, c.fill_log10_std,
                                            self.dtype)
            uniform = stateless.uniform(shape, uniform_seed, 0.0, c.voxel_noise_gev, self.dtype)
        below_cut = layers_gev < c.cut_gev
        filled = tf.where(layers_gev < c.empty_below_gev, tf.minimum(fill, c.cut_gev), layers_gev)
        noisy = filled + uniform
        return tf.where(below_cut, tf.minimum(noisy, c.cut_gev), noisy)

    def _maxima(self, layer_index):
        return tf.gather(self.layer_maxima_gev, layer_index)[..., None, None] + 1e-6

    def transform_voxels(self, voxels_gev, layer_index):
        """x / (max_layer + 1e-6), clamp [0, 1], log10(x + 1e-7) / 7 + 1, logit with alpha 1e-2.
        `layer_index`: integers of the images' leading shape (e.g. (N, 45) for (N, 45, r, alpha))."""
        c = self.config
        x = tf.clip_by_value(voxels_gev / self._maxima(layer_index), 0.0, 1.0)
        y = tf.math.log(x + c.log_offset) / np.log(10.0) / c.log_divisor + 1.0
        return logit_transform(y, c.voxel_logit_alpha)

    def inverse_transform_voxels(self, values, layer_index):
        """The inverse of `transform_voxels` (clamped), in GeV, >= 0."""
        c = self.config
        y = inverse_logit_transform(values, c.voxel_logit_alpha, clamp=True)
        x = 10.0 ** ((y - 1.0) * c.log_divisor) - c.log_offset
        return tf.maximum(x, 0.0) * self._maxima(layer_index)

    def energy_channel(self, energy_gev):
        """log10(E_layer / GeV + 1e-6) + 1."""
        return tf.math.log(energy_gev + 1e-6) / np.log(10.0) + 1.0

    def layer_context(self, layer, previous, energy_gev, incident_gev, layer_index=None):
        """Context images (N, r, alpha, C) of layer `layer` (a Python int for the causal flows; ignored by
        the shared flow, which reads `layer_index` (N,) or a scalar tensor).

        Args:
            previous: transformed previous layers (N, P, r, alpha), previous[:, k] = layer - 1 - k, zeros where
                that layer does not exist; they become channels in this order, or oldest first with the config's
                `previous_oldest_first`.
            energy_gev, incident_gev: (N, 1).
        """
        shared = self.config.layer_flows == "shared"
        count = self.config.previous_layers if shared else min(self.config.previous_layers, layer)
        ones = tf.ones_like(previous[:, 0])
        channels = [previous[:, k] for k in range(count)][:: -1 if self.config.previous_oldest_first else 1]
        channels += [ones * self.energy_channel(energy_gev)[:, :, None],
                     ones * self.incident_condition(incident_gev)[:, :, None]]
        context = tf.stack(channels, axis=-1)
        if shared:
            index = tf.broadcast_to(tf.cast(layer_index, tf.int32), tf.shape(previous)[:1])
            one_hot = tf.one_hot(index, self.n_layers, dtype=self.dtype)[:, None, None, :]
            context = tf.concat([context, one_hot * ones[..., None]], axis=-1)
        return context

    def _previous_of(self, transformed, layer):
        """(N, P, r, alpha) previous layers of `layer` from all transformed layers (N, 45, r, alpha)."""
        p = self.config.previous_layers
        parts = [transformed[:, layer - 1 - k] if layer - 1 - k >= 0 else tf.zeros_like(transformed[:, 0])
                 for k in range(max(p, 1))]
        return tf.stack(parts, axis=1)

    def window_inputs(self, layers_gev, layer_index, incident_gev, seed, layer: int | None = None):
        """Layer-flow (x, context) for rows of windows of raw layers: `layers_gev` (B, P + 1, r, alpha) holds
        layer i, i - 1, ..., i - P of each row (anything where that index is < 0), `layer_index` (B,) is i,
        `layer` the same i as a Python int for a causal flow (None for the shared flow, whose rows may be
        different layers). Fresh noise from `seed` (int[2]); `seed=None` uses its mean."""
        noisy = self.noisy_voxels(layers_gev, seed)
        offsets = tf.range(tf.shape(layers_gev)[1])
        indices = tf.cast(layer_index, tf.int32)[:, None] - offsets[None, :]
        transformed = self.transform_voxels(noisy, tf.maximum(indices, 0))
        transformed *= tf.cast(indices >= 0, self.dtype)[..., None, None]
        energy = self.energies_after_cut(noisy[:, 0])[:, None]
        return transformed[:, 0], self.layer_context(layer, transformed[:, 1:], energy, incident_gev, layer_index)

    # ----- density -----------------------------------------------------------------------------------
    def log_prob(self, showers, incident_energies, seed: int | None = 0):
        """log p per shower: energy flow + the 45 layer-flow terms, in the preprocessed coordinates (noise drawn
        from `seed`; `seed=None` replaces it by its mean)."""
        seed = None if seed is None else tf.constant([int(seed), 41], tf.int64)
        return self._log_prob(showers, incident_energies, seed)

    def log_prob_graph(self, showers, incident_energies):
        """`log_prob` with every noise term replaced by its mean: deterministic (the SavedModel's signature)."""
        return self._log_prob(showers, incident_energies, None)

    def _log_prob(self, showers, incident_energies, seed):
        layers = self.layers_gev(showers)
        incident = tf.reshape(tf.cast(incident_energies, self.dtype), [-1, 1]) / 1e3
        seeds = [None, None] if seed is None else tf.unstack(stateless.split(seed, 2))
        energy_x = self.energy_flow_x(self.energies_after_cut(layers), incident, seeds[0])
        noisy = self.noisy_voxels(layers, seeds[1])
        transformed = self.transform_voxels(noisy, tf.range(self.n_layers)[None, :])
        return self.preprocessed_log_prob(energy_x, transformed, self.energies_after_cut(noisy), incident)

    def preprocessed_log_prob(self, energy_x, transformed, energies_gev, incident_gev):
        """log p per shower in the preprocessed coordinates: the energy flow's on `energy_x` (N, 45) (logits of the
        scaled layer energies) given E_inc (N, 1) GeV, plus each layer flow's on `transformed` (N, 45, r, alpha)
        (`transform_voxels`) given the previous layers, the layer energies `energies_gev` (N, 45) and E_inc."""
        energy_x, transformed, energies, incident = (tf.cast(v, self.dtype) for v in
                                                     (energy_x, transformed, energies_gev, incident_gev))
        total = self.energy_flow.log_prob(energy_x, self.incident_condition(incident))
        if self.config.layer_flows == "shared":
            return total + self._shared_log_prob(transformed, energies, incident)
        for layer in range(self.n_layers):
            context = self.layer_context(layer, self._previous_of(transformed, layer), energies[:, layer : layer + 1],
                                         incident, layer)
            total += self.layer_flows[layer].log_prob(transformed[:, layer], context)
        return total

    def _shared_log_prob(self, transformed, energies, incident):
        """Sum over the layers of the shared flow's log p, in a `tf.while_loop` (the graph holds the flow once)."""
        offsets = tf.range(1, max(self.config.previous_layers, 1) + 1)

        def body(layer, total):
            indices = layer - offsets
            previous = tf.gather(transformed, tf.maximum(indices, 0), axis=1)
            previous *= tf.cast(indices >= 0, self.dtype)[None, :, None, None]
            context = self.layer_context(None, previous, tf.gather(energies, [layer], axis=1), incident, layer)
            return layer + 1, total + self.layer_flow.log_prob(tf.gather(transformed, layer, axis=1), context)

        total = tf.zeros(tf.shape(transformed)[:1], self.dtype)
        return tf.while_loop(lambda layer, _: layer < self.n_layers, body, (tf.constant(0), total))[1]

    # ----- generation (docs/models.md section 6.4) --------------------------------------------------------
    def sample_layer_energies(self, incident_gev, seed):
        """Layer energies (N, 45) GeV from the energy flow; rows with sum / E_inc > veto are redrawn (at most
        `max_veto_rounds` times; a row still vetoed after that keeps its last draw)."""
        c = self.config
        condition = self.incident_condition(incident_gev)

        def draw(index):
            logits = self.energy_flow.sample(condition, stateless.fold_in(seed, index))
            return self.layer_energies_from_logits(logits, incident_gev)

        def vetoed(energies):
            return tf.reduce_sum(energies, axis=-1) > c.veto * incident_gev[:, 0]

        def redraw(index, energies):
            return index + 1, tf.where(vetoed(energies)[:, None], draw(index), energies)

        def again(index, energies):
            return tf.logical_and(index <= c.max_veto_rounds, tf.reduce_any(vetoed(energies)))

        return tf.while_loop(again, redraw, (tf.constant(1), draw(0)))[1]

    def sample_showers(self, incident_energies, seed):
        """Showers (N, V) float32 MeV for E_inc (N, 1) MeV: the energy flow (with the veto), then the layers one
        after the other, each given the samples of up to 5 previous layers; the 1x1-convolution inverses are
        computed once per call. The shared flow runs in a `tf.while_loop` (the graph holds it once)."""
        seed = tf.convert_to_tensor(seed, tf.int32)
        incident = tf.cast(incident_energies, self.dtype) / 1e3
        energy_seed, layer_seed = tf.unstack(stateless.split(seed, 2))
        energies = self.sample_layer_energies(incident, energy_seed)

        def draw(flow, layer, context, weights):
            return flow.sample(context, stateless.fold_in(layer_seed, layer), weights)

        return tf.cast(self._showers_from(energies, incident, draw), tf.float32)

    def showers_from_noise(self, incident_energies, energy_noise, layer_noise):
        """Showers (N, V) MeV in the model's dtype from given standard-normal noise, without the veto: the energy
        flow's `energy_noise` (N, 45) and the layer flows' `layer_noise` (N, 45, h, w, c) (each flow's base
        shape, `ConvLayerFlow.squeezed_shape`). The reference comparison's entry point; `sample_showers` draws the
        noise itself."""
        incident = tf.cast(incident_energies, self.dtype) / 1e3
        logits = self.energy_flow.sample_from_noise(energy_noise, self.incident_condition(incident))
        energies = self.layer_energies_from_logits(logits, incident)
        noise = tf.convert_to_tensor(layer_noise, self.dtype)

        def draw(flow, layer, context, weights):
            return flow.to_data(tf.gather(noise, layer, axis=1), context, weights)[0]

        return self._showers_from(energies, incident, draw)

    def _showers_from(self, energies, incident, draw):
        """Showers (N, V) MeV (model dtype) given the layer energies (N, 45) and E_inc (N, 1) GeV, each layer drawn
        by `draw(flow, layer, context, cached weights)` (layer a Python int, or a tensor for the shared flow)."""
        n = tf.shape(incident)[0]
        previous = tf.zeros(tf.stack([n, max(self.config.previous_layers, 1), self.n_r, self.n_alpha]), self.dtype)
        if self.config.layer_flows == "shared":
            transformed = self._sample_shared(previous, energies, incident, draw)
        else:
            samples = []
            for layer in range(self.n_layers):
                flow = self.layer_flows[layer]
                context = self.layer_context(layer, previous, energies[:, layer : layer + 1], incident)
                sample = draw(flow, layer, context, flow.cached_weights())
                previous = tf.concat([sample[:, None], previous[:, :-1]], axis=1)
                samples.append(sample)
            transformed = tf.stack(samples, axis=1)
        voxels = self.inverse_transform_voxels(transformed, tf.range(self.n_layers)[None, :])
        kept = tf.where(voxels < self.config.cut_gev, tf.zeros_like(voxels), voxels)
        if self.config.renormalize_layers:
            rows, target = self._layer_rows(kept), energies[..., None]
            if self.config.keep_filled_layers:
                rows, target = keep_filled_rows(rows, self._layer_rows(voxels), target, self.config.cut_gev)
            kept = tf.reshape(rescale_rows(rows, target), tf.shape(voxels))
        return self.showers_mev(kept)

    def _layer_rows(self, voxels):
        """(N, 45, r, alpha) layer images as (N, 45, r x alpha) rows."""
        return tf.reshape(voxels, tf.stack([tf.shape(voxels)[0], self.n_layers, -1]))

    def _sample_shared(self, previous, energies, incident, draw):
        weights = self.layer_flow.cached_weights()
        samples = tf.TensorArray(self.dtype, size=self.n_layers)

        def body(layer, previous, samples):
            energy = tf.gather(energies, [layer], axis=1)
            context = self.layer_context(None, previous, energy, incident, layer)
            sample = draw(self.layer_flow, layer, context, weights)
            return layer + 1, tf.concat([sample[:, None], previous[:, :-1]], axis=1), samples.write(layer, sample)

        _, _, samples = tf.while_loop(lambda layer, *_: layer < self.n_layers, body,
                                      (tf.constant(0), previous, samples))
        return tf.transpose(samples.stack(), [1, 0, 2, 3])
