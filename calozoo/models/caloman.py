"""CaloMan for CaloChallenge dataset 1 (Cresswell et al., arXiv:2211.15380): density estimation on a learned manifold.

Three steps, trained one after the other (calozoo.training.caloman):

1. EPL flow: the energy per layer in CaloFlow's u-space (logit, alpha 1e-6), conditioned on log10(E_inc / 33.3 GeV).
2. GAE: a generalized autoencoder (VAE by default) on the layer-normalised voxels, conditioned on the labels
   y = [log10(E_inc + 1e-3), log10((E_k + 1e-3) / 1e5) - 1] (MeV).
3. DE flow: a coupling-RQS flow on the encoder means divided by their largest |value|, conditioned on y.

Both flows see their inputs divided by the largest |value| of the training inputs (the reference's `scale_data`).

Sampling: E_inc snapped to the DS1 energies -> EPL flow -> layer energies -> y -> DE flow -> decoder mean ->
clip to the training voxels' range -> each layer (renormalised to sum 1, unlike the reference) times its energy.
Constants: docs/models.md section 5; the comparison with the reference code and its deviations: section 5.5.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from calozoo import stateless
from calozoo.bijectors.coupling_flow import CouplingRQSFlow
from calozoo.data.geometry import load_geometry
from calozoo.models._config import FlowConfig
from calozoo.models.base import ShowerGenerator
from calozoo.networks.autoencoder import GeneralizedAutoencoder, autoencoder_num_params
from calozoo.preprocessing import energies_from_fractions, energy_fractions, inverse_logit_transform, logit_transform
from calozoo.preprocessing.layers import layer_normalize, layer_sums, split_layers

__all__ = ["CaloManConfig", "CaloMan"]


@dataclasses.dataclass(frozen=True)
class CaloManConfig(FlowConfig):
    """Everything that defines a CaloMan DS1 model; the defaults are the reference code's (photons).

    `max_deposited_ratio` is f of the u-space (3.1 photons, 7.0 pions). The flows' splines have `num_bins` bins on
    [-tail_bound, tail_bound] with minima `min_bin` (nflows' defaults 1e-3).
    """

    family_label = "CaloMan"
    datasets = ("1-photons", "1-pions")

    dataset: str = "1-photons"
    gae: str = "vae"  # "vae" or "ae"
    latent_dim: int = 35
    encoder_hidden: list = dataclasses.field(default_factory=lambda: [512, 512, 512])
    decoder_hidden: list = dataclasses.field(default_factory=lambda: [512, 512, 512])
    use_labels: bool = True
    beta: float = 1.0
    epl_hidden: int = 64
    epl_layers: int = 4
    epl_blocks: int = 3
    de_hidden: int = 64
    de_layers: int = 4
    de_blocks: int = 3
    num_bins: int = 8
    tail_bound: float = 1.0
    min_bin: float = 1e-3
    max_deposited_ratio: float = 3.1
    logit_alpha: float = 1e-6
    epl_reference_mev: float = 33.3e3
    label_offset_mev: float = 1e-3
    layer_label_unit_mev: float = 1e5
    snap_incident_energies: bool = True
    renormalize_layers: bool = False  # the reference; True rescales each decoded layer to sum 1 first (shipped v1)
    permutation_seed: int = 0
    seed: int = 0
    dtype: str = "float32"

    def __post_init__(self):
        if self.dataset not in self.datasets:
            raise ValueError(f"CaloMan needs dataset '1-photons' or '1-pions'; got '{self.dataset}'.")
        if self.gae not in ("vae", "ae"):
            raise ValueError(f"`gae` must be 'vae' or 'ae'; got '{self.gae}'.")
        if self.max_deposited_ratio <= 0:
            raise ValueError(f"`max_deposited_ratio` must be > 0; got {self.max_deposited_ratio}.")
        # YAML and --set give lists (or one int); keep lists so that the config dumps back to plain YAML.
        for key in ("encoder_hidden", "decoder_hidden"):
            value = getattr(self, key)
            object.__setattr__(self, key, [int(value)] if np.isscalar(value) else [int(v) for v in value])


def snap_to_ds1_energies(incident_energies):
    """Each energy replaced by the nearest (in log) of the 15 DS1 energies 2^8 .. 2^22 MeV. (The reference's
    `en_binning` takes the nearest in linear distance: the two differ for E in (sqrt(2), 1.5) x 2^n only.)"""
    exponent = tf.clip_by_value(tf.round(tf.math.log(incident_energies) / np.log(2.0)), 8.0, 22.0)
    return tf.pow(tf.constant(2.0, incident_energies.dtype), exponent)


class CaloMan(ShowerGenerator):
    """A CaloMan DS1 generator: EPL flow -> DE flow on the GAE latent space -> decoder mean -> showers in MeV.

    Example:
        >>> model = CaloMan(CaloManConfig(latent_dim=4, encoder_hidden=[16], decoder_hidden=[16], epl_hidden=8,
        ...                               de_hidden=8, epl_layers=2, de_layers=2))
        >>> model.generate([1024.0, 65536.0], seed=1).shape
        (2, 368)
    """

    def __init__(self, config: CaloManConfig, name: str | None = None):
        super().__init__(config.dataset, name=name or "caloman")
        self.config = config
        self.layer_sizes = load_geometry(config.dataset).layer_sizes
        n_layers = len(self.layer_sizes)
        self.dtype = tf.as_dtype(config.dtype)
        label_dim = 1 + n_layers
        with self.name_scope:
            self.energy_flow = CouplingRQSFlow(n_layers, 1, config.epl_hidden, config.epl_layers, config.epl_blocks,
                                               config.spline, config.permutation_seed, config.seed + 1, self.dtype,
                                               name="energy_flow")
            self.autoencoder = GeneralizedAutoencoder(config.gae, sum(self.layer_sizes),
                                                      label_dim if config.use_labels else 0, config.latent_dim,
                                                      config.encoder_hidden, config.decoder_hidden, config.beta,
                                                      seed=config.seed + 2, dtype=self.dtype, name="autoencoder")
            self.latent_flow = CouplingRQSFlow(config.latent_dim, label_dim, config.de_hidden, config.de_layers,
                                               config.de_blocks, config.spline, config.permutation_seed + 1,
                                               config.seed + 3, self.dtype, name="latent_flow")
            # Set from the training data (calozoo.training.caloman) and saved with the weights: each flow sees its
            # inputs divided by their largest |value| (the reference's `scale_data`), so that they fall inside the
            # splines' [-1, 1]; the decoder output is clipped to the training voxels' range.
            self.energy_scale = tf.Variable(tf.ones([], self.dtype), trainable=False, name="energy_scale")
            self.latent_scale = tf.Variable(tf.ones([], self.dtype), trainable=False, name="latent_scale")
            self.voxel_range = tf.Variable(tf.constant([0.0, 1.0], self.dtype), trainable=False, name="voxel_range")

    @staticmethod
    def expected_param_counts(config: CaloManConfig) -> dict:
        """Trainable parameters of each part without building anything, and the challenge's two totals:
        `training` (everything) and `generation` (what sampling uses: all but the encoder)."""
        geometry = load_geometry(config.dataset)
        n_layers, label_dim = geometry.n_layers, 1 + geometry.n_layers
        gae = autoencoder_num_params(config.gae, geometry.n_voxels, label_dim if config.use_labels else 0,
                                     config.latent_dim, config.encoder_hidden, config.decoder_hidden)
        counts = {
            "energy_flow": CouplingRQSFlow.expected_num_params(n_layers, 1, config.epl_hidden, config.epl_layers,
                                                               config.epl_blocks, config.num_bins),
            "encoder": gae["encoder"],
            "decoder": gae["decoder"],
            "latent_flow": CouplingRQSFlow.expected_num_params(config.latent_dim, label_dim, config.de_hidden,
                                                               config.de_layers, config.de_blocks, config.num_bins),
        }
        counts["generation"] = counts["energy_flow"] + counts["decoder"] + counts["latent_flow"]
        counts["training"] = counts["generation"] + counts["encoder"]
        return counts

    # ----- conditions and preprocessing -------------------------------------------------------
    def energy_condition(self, incident_energies_mev):
        """log10(E_inc / 33.3 GeV), (N, 1)."""
        return tf.math.log(incident_energies_mev / self.config.epl_reference_mev) / np.log(10.0)

    def labels(self, incident_energies_mev, layer_energies_mev):
        """y = [log10(E_inc + 1e-3), log10((E_k + 1e-3) / 1e5) - 1 ...], (N, 1 + L), energies in MeV."""
        cfg = self.config
        log10 = lambda v: tf.math.log(v) / np.log(10.0)  # noqa: E731
        layer_terms = log10((layer_energies_mev + cfg.label_offset_mev) / cfg.layer_label_unit_mev) - 1.0
        return tf.concat([log10(incident_energies_mev + cfg.label_offset_mev), layer_terms], axis=-1)

    def preprocess(self, showers_mev, incident_energies_mev) -> dict:
        """Training inputs of the three steps from showers in MeV (no noise: CaloMan adds none).

        Returns:
            dict with `energy_x` (N, L) u-space logits, `energy_c` (N, 1), `voxels` (N, V) layer-normalised
            (an empty layer stays 0) and `labels` (N, 1 + L).
        """
        cfg = self.config
        showers = tf.convert_to_tensor(showers_mev, self.dtype)
        energies = tf.reshape(tf.convert_to_tensor(incident_energies_mev, self.dtype), [-1, 1])
        layer_energies = layer_sums(showers, self.layer_sizes)
        fractions = energy_fractions(layer_energies, energies, cfg.max_deposited_ratio)
        fractions = tf.where(tf.math.is_nan(fractions), tf.zeros_like(fractions), fractions)  # 0/0: empty layers
        return {
            "energy_x": logit_transform(fractions, cfg.logit_alpha),
            "energy_c": self.energy_condition(energies),
            "voxels": layer_normalize(showers, self.layer_sizes),
            "labels": self.labels(energies, layer_energies),
        }

    # ----- generation ---------------------------------------------------------------------------
    def layer_energies_from_noise(self, incident_energies_mev, noise):
        """Layer energies (N, L) MeV, >= 0, from the EPL flow applied to standard-normal `noise` (N, L)."""
        condition = self.energy_condition(incident_energies_mev)
        u_logits = self.energy_flow.sample_from_noise(noise, condition) * self.energy_scale
        fractions = inverse_logit_transform(u_logits, self.config.logit_alpha, clamp=True)
        energies = energies_from_fractions(fractions, incident_energies_mev, self.config.max_deposited_ratio)
        return tf.maximum(energies, 0.0)

    def sample_layer_energies(self, incident_energies_mev, seed):
        """Layer energies (N, L) MeV, >= 0, from the EPL flow."""
        return self.layer_energies_from_noise(incident_energies_mev, self._noise(incident_energies_mev,
                                                                                 self.energy_flow.features, seed))

    def _noise(self, rows, features, seed):
        """The standard-normal draw of a flow's `sample` for as many rows as `rows` has."""
        return stateless.normal([tf.shape(rows)[0], features], seed=seed, dtype=self.dtype)

    def decode_latents(self, latents, labels):
        """Decoder means of DE-flow samples (scaled back by `latent_scale`), clipped to the training range."""
        shapes = self.autoencoder.decode(latents * self.latent_scale, labels if self.config.use_labels else None)[0]
        return tf.clip_by_value(shapes, self.voxel_range[0], self.voxel_range[1])

    def showers_from_shapes(self, shapes, layer_energies):
        """Each calorimeter layer of the normalised `shapes` times its energy (MeV). With `renormalize_layers`
        each layer is first divided by its sum, so that the shower keeps the EPL flow's layer energies exactly
        (the reference multiplies the clipped decoder output directly); an all-zero layer stays zero."""
        blocks = split_layers(shapes, self.layer_sizes)
        scaled = []
        for k, block in enumerate(blocks):
            if self.config.renormalize_layers:
                total = tf.reduce_sum(block, axis=-1, keepdims=True)
                block = tf.math.divide_no_nan(block, total)
            scaled.append(block * layer_energies[:, k : k + 1])
        return tf.concat(scaled, axis=-1)

    def showers_from_noise(self, incident_energies, energy_noise, latent_noise):
        """Showers (N, V) MeV, in the model's dtype, for E_inc (N, 1) MeV (not snapped here) from given standard-normal
        noise of the EPL flow (N, L) and the DE flow (N, latent): `sample_showers` without its draws (the reference
        comparisons feed the noise the reference code drew)."""
        energies = tf.cast(incident_energies, self.dtype)
        layer_energies = self.layer_energies_from_noise(energies, energy_noise)
        labels = self.labels(energies, layer_energies)
        latents = self.latent_flow.sample_from_noise(latent_noise, labels)
        return self.showers_from_shapes(self.decode_latents(latents, labels), layer_energies)

    def sample_showers(self, incident_energies, seed):
        """Showers (N, V) float32 MeV for E_inc (N, 1) MeV."""
        seed = tf.convert_to_tensor(seed, tf.int32)
        energies = tf.cast(tf.reshape(incident_energies, [-1, 1]), self.dtype)
        if self.config.snap_incident_energies:
            energies = snap_to_ds1_energies(energies)
        energy_seed, latent_seed = tf.unstack(stateless.split(seed, 2))
        energy_noise = self._noise(energies, self.energy_flow.features, energy_seed)
        latent_noise = self._noise(energies, self.latent_flow.features, latent_seed)
        return tf.cast(self.showers_from_noise(energies, energy_noise, latent_noise), tf.float32)
