"""CaloFlow (Krause, Shih): Flow-I + Flow-II teacher/student, on CaloChallenge dataset 1 (arXiv:2210.14245) and on
the original CaloGAN detector (CaloFlow v1 teacher / v2 student, arXiv:2106.05285, arXiv:2110.11377).

Flow-I learns the layer energies in u-space given E_inc; Flow-II learns the layer-normalised voxels in logit
space given E_inc and the layer energies. The teacher's Flow-II is a MAF (density in one pass), the student's
an IAF distilled from it (sampling in one pass). One code path serves both detectors; the constants that differ
(conditions, u-space factor, clamp) are config fields. Constants: docs/models.md section 2 (DS1) and
docs/calogan.md section 2 (CaloGAN).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from calozoo import stateless
from calozoo.bijectors.autoregressive_flow import AutoregressiveRQSFlow
from calozoo.bijectors.layerwise_permutation import alternating_permutations, random_within_layers
from calozoo.data.geometry import CALOGAN_DATASETS, load_geometry
from calozoo.models._config import FlowConfig
from calozoo.models.base import ShowerGenerator
from calozoo.preprocessing import (
    energies_from_fractions,
    energy_fractions,
    inverse_logit_transform,
    layer_normalize,
    logit_transform,
    rescale_layers,
)
from calozoo.preprocessing.layers import layer_sums

__all__ = ["CaloFlowConfig", "CaloFlow", "shower_flow_permutations"]


@dataclasses.dataclass(frozen=True)
class CaloFlowConfig(FlowConfig):
    """Everything that defines a CaloFlow model; the defaults are the DS1 photon teacher of the paper.

    The conditions are log10(`energy_condition_scale` E_inc) and log10(E_k + eps) + `layer_condition_offset`
    in model units (`energy_unit_mev`): DS1 uses 3 and -1, CaloGAN 10 and +2 (log10(E_tot / 10 GeV) and
    log10(E_k / GeV)).
    """

    family_label = "CaloFlow"
    datasets = ("1-photons", "1-pions") + CALOGAN_DATASETS

    dataset: str = "1-photons"
    role: str = "teacher"  # "teacher" (MAF Flow-II) or "student" (IAF Flow-II)
    hidden: int = 378
    num_blocks: int = 8
    made_hidden_blocks: int = 1
    num_bins: int = 8
    tail_bound: float = 14.0
    min_bin: float = 1e-6
    dropout: float = 0.05
    energy_hidden: int = 64
    energy_blocks: int = 6
    energy_made_hidden_blocks: int = 2
    energy_unit_mev: float = 1e5
    u0_factor: float = 2.42
    energy_condition_scale: float = 3.0
    layer_condition_offset: float = -1.0
    voxel_noise: float = 1e-8
    energy_flow_noise: float = 1e-8
    layer_condition_eps: float = 1e-8
    generation_layer_condition_eps: float = 1e-8
    logit_alpha: float = 1e-6
    threshold_mev: float = 0.01
    max_voxel_mev: float = 1e6
    permutation_seed: int = 0
    seed: int = 0
    dtype: str = "float64"

    def __post_init__(self):
        self.check_dataset_and_role()


def shower_flow_permutations(layer_sizes, num_blocks: int, seed: int) -> list[np.ndarray]:
    """Flow-II permutations: `alternating_permutations` inside each calorimeter layer, so no feature ever
    leaves its layer."""
    return alternating_permutations(layer_sizes, num_blocks, seed)


def _energy_flow_permutations(features: int, num_blocks: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    return [random_within_layers([features], rng) for _ in range(num_blocks)]


class CaloFlow(ShowerGenerator):
    """A CaloFlow generator: Flow-I (layer energies) -> Flow-II (voxel shapes) -> showers in MeV.

    Example:
        >>> model = CaloFlow(CaloFlowConfig(role="student", hidden=16, energy_hidden=8))
        >>> model.generate([1024.0, 65536.0], seed=1).shape
        (2, 368)
    """

    log_prob_space = "Flow-I u-space + Flow-II logit space"

    def __init__(self, config: CaloFlowConfig, name: str | None = None):
        super().__init__(config.dataset, name=name or "caloflow")
        self.config = config
        if config.role == "student":
            # benchmarks/micro_batch_scan.json, batches of 10 000 on one core: slices of 250 take 0.75 (paper size)
            # and 0.63 (shipped) of the time per shower of slices of 1 000, whose spline temporaries leave the cache
            self.micro_batch = 250
        geometry = load_geometry(config.dataset)
        self.layer_sizes = geometry.layer_sizes
        n_layers = len(self.layer_sizes)
        self.dtype = tf.as_dtype(config.dtype)
        with self.name_scope:
            self.energy_flow = AutoregressiveRQSFlow(
                features=n_layers,
                context=1,
                hidden=config.energy_hidden,
                num_blocks=config.energy_blocks,
                kind="maf",
                permutations=_energy_flow_permutations(n_layers, config.energy_blocks, config.permutation_seed),
                made_hidden_blocks=config.energy_made_hidden_blocks,
                dropout=0.0,
                spline=config.spline,
                seed=config.seed + 7,
                dtype=self.dtype,
                name="energy_flow",
            )
            self.shower_flow = AutoregressiveRQSFlow(
                features=geometry.n_voxels,
                context=1 + n_layers,
                hidden=config.hidden,
                num_blocks=config.num_blocks,
                kind="maf" if config.role == "teacher" else "iaf",
                permutations=shower_flow_permutations(self.layer_sizes, config.num_blocks, config.permutation_seed),
                made_hidden_blocks=config.made_hidden_blocks,
                dropout=config.dropout,
                spline=config.spline,
                seed=config.seed,
                dtype=self.dtype,
                name="shower_flow",
            )

    @staticmethod
    def expected_param_counts(config: CaloFlowConfig) -> dict:
        """Trainable parameters of Flow-I and Flow-II from the layer shapes, without building anything."""
        geometry = load_geometry(config.dataset)
        energy = AutoregressiveRQSFlow.expected_num_params(
            geometry.n_layers, 1, config.energy_hidden, config.energy_blocks, config.num_bins,
            config.energy_made_hidden_blocks)
        shower = AutoregressiveRQSFlow.expected_num_params(
            geometry.n_voxels, 1 + geometry.n_layers, config.hidden, config.num_blocks, config.num_bins,
            config.made_hidden_blocks)
        return {"energy_flow": energy, "shower_flow": shower, "total": energy + shower}

    @property
    def has_density(self) -> bool:
        return self.config.role == "teacher"

    # ----- conditions and preprocessing ---------------------------------------------------------
    def energy_condition(self, incident_energy):
        """log10(s E_inc), (N, 1), from E_inc in model units (100 GeV); s = `energy_condition_scale`
        (DS1: log10(3 E_inc / 100 GeV); CaloGAN: log10(E_inc / 10 GeV))."""
        return tf.math.log(self.config.energy_condition_scale * incident_energy) / np.log(10.0)

    def shower_condition(self, incident_energy, layer_energies, eps):
        """[log10(s E_inc), log10(E_k + eps) + `layer_condition_offset` ...] in model units, (N, 1 + L)."""
        layer_terms = tf.math.log(layer_energies + eps) / np.log(10.0) + self.config.layer_condition_offset
        return tf.concat([self.energy_condition(incident_energy), layer_terms], axis=-1)

    def preprocess(self, showers_mev, incident_energies_mev, seed, noise: bool = True):
        """Training inputs of both flows from showers in MeV, with the uniform voxel noise of the paper.

        TensorFlow ops only (graph friendly); the division into model units is done in float64.
        `noise=False` adds the noise's mean instead of a draw (the deterministic path of `log_prob_graph`).

        Returns:
            dict with `energy_x` (N, L), `energy_c` (N, 1), `shower_x` (N, V), `shower_c` (N, 1 + L).
        """
        cfg = self.config
        unit = cfg.energy_unit_mev
        voxels = tf.cast(tf.cast(showers_mev, tf.float64) / unit, self.dtype)
        energy = tf.cast(tf.reshape(tf.cast(incident_energies_mev, tf.float64), [-1, 1]) / unit, self.dtype)
        # Without random noise each voxel gets the noise's mean: deterministic, row by row, and close to the
        # inputs the flows were trained on (a voxel at exactly zero sits where no training input was).
        shower_voxels = voxels + 0.5 * cfg.voxel_noise
        energy_voxels = voxels + 0.5 * cfg.energy_flow_noise
        if noise:
            noise_seed = tf.stack([tf.cast(seed, tf.int32), tf.constant(17, tf.int32)])
            shower_voxels = voxels + stateless.uniform(tf.shape(voxels), noise_seed, 0.0, cfg.voxel_noise,
                                                       self.dtype)
            energy_voxels = voxels + stateless.uniform(tf.shape(voxels), noise_seed + 1, 0.0,
                                                       cfg.energy_flow_noise, self.dtype)
        e_layers_energy_flow = layer_sums(energy_voxels, self.layer_sizes)
        e_layers = layer_sums(shower_voxels, self.layer_sizes)
        fractions = energy_fractions(e_layers_energy_flow, energy, cfg.u0_factor)
        return {
            "energy_x": logit_transform(fractions, cfg.logit_alpha),
            "energy_c": self.energy_condition(energy),
            "shower_x": logit_transform(layer_normalize(shower_voxels, self.layer_sizes), cfg.logit_alpha),
            "shower_c": self.shower_condition(energy, e_layers, cfg.layer_condition_eps),
        }

    # ----- generation ---------------------------------------------------------------------------
    def sample_layer_energies(self, incident_energy, seed):
        """Layer energies (N, L) in model units from Flow-I, for E_inc (N, 1) in model units."""
        u_logit = self.energy_flow.sample(self.energy_condition(incident_energy), seed)
        fractions = inverse_logit_transform(u_logit, self.config.logit_alpha, clamp=True)
        return energies_from_fractions(fractions, incident_energy, self.config.u0_factor)

    def showers_from_layers(self, shower_logits, layer_energies):
        """Flow-II output (logit space) and layer energies (model units) -> showers in MeV, thresholded."""
        cfg = self.config
        shapes = inverse_logit_transform(shower_logits, cfg.logit_alpha, clamp=False)
        showers = rescale_layers(shapes, layer_energies, self.layer_sizes) * cfg.energy_unit_mev
        showers = tf.clip_by_value(showers, 0.0, cfg.max_voxel_mev)
        return tf.where(showers < cfg.threshold_mev, tf.zeros_like(showers), showers)

    def sample_showers(self, incident_energies, seed):
        """Showers (N, V) float32 MeV for E_inc (N, 1) MeV: Flow-I -> Flow-II -> energy space."""
        seed = tf.convert_to_tensor(seed, tf.int32)
        energy_seed, shower_seed = tf.unstack(stateless.split(seed, 2))
        batch = tf.shape(incident_energies)[0]
        energy_noise = stateless.normal([batch, self.energy_flow.features], energy_seed, dtype=self.dtype)
        shower_noise = stateless.normal([batch, self.shower_flow.features], shower_seed, dtype=self.dtype)
        return tf.cast(self.showers_from_noise(incident_energies, energy_noise, shower_noise), tf.float32)

    def showers_from_noise(self, incident_energies, energy_noise, shower_noise):
        """Showers (N, V) MeV, in the model's dtype, for E_inc (N, 1) MeV from given standard-normal noise of
        Flow-I (N, L) and Flow-II (N, V): `sample_showers` without its draws (the reference comparisons feed the
        noise the reference code drew)."""
        cfg = self.config
        energy = tf.cast(incident_energies, self.dtype) / cfg.energy_unit_mev
        u_logit = self.energy_flow.sample_from_noise(energy_noise, self.energy_condition(energy))
        fractions = inverse_logit_transform(u_logit, cfg.logit_alpha, clamp=True)
        layer_energies = energies_from_fractions(fractions, energy, cfg.u0_factor)
        condition = self.shower_condition(energy, layer_energies, cfg.generation_layer_condition_eps)
        logits = self.shower_flow.sample_from_noise(shower_noise, condition)
        return self.showers_from_layers(logits, layer_energies)

    # ----- density ------------------------------------------------------------------------------
    def log_prob(self, showers, incident_energies, seed: int = 0, sequential: bool = False):
        """log p of Flow-I (u-space) + Flow-II (logit space) per shower, in the preprocessed coordinates.

        The voxels get the paper's uniform noise (seeded by `seed`), as in training. Only teachers have a
        density that costs one pass; a student's needs D sequential passes per block, which it computes only
        with `sequential=True` (for test-set NLLs of small samples; slow at paper size).
        """
        inputs = self.preprocess(showers, incident_energies, seed)
        if sequential and not self.has_density:
            return self.energy_flow.log_prob(inputs["energy_x"], inputs["energy_c"]) + self.shower_flow.log_prob(
                inputs["shower_x"], inputs["shower_c"])
        return self._preprocessed_log_prob(inputs)

    def log_prob_graph(self, showers, incident_energies):
        """`log_prob` with the voxel noise replaced by its mean: deterministic TensorFlow ops, (N,) in the
        model's dtype, each row independent of the others (so TF Serving may batch requests).

        This is the density that a SavedModel exports (`calozoo.export`). It differs from `log_prob` by the
        noise draw, which moves the empty voxels' logits: by O(10) nats per DS1 shower, about as much as two
        `log_prob` seeds differ from each other.
        """
        return self._preprocessed_log_prob(self.preprocess(showers, incident_energies, 0, noise=False))

    def _preprocessed_log_prob(self, inputs):
        if not self.has_density:
            raise NotImplementedError("CaloFlow students have no one-pass density; use the teacher for log_prob.")
        return self.energy_flow.log_prob(inputs["energy_x"], inputs["energy_c"]) + self.shower_flow.log_prob(
            inputs["shower_x"], inputs["shower_c"]
        )
