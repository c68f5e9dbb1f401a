"""How a convolutional L2LFlow is trained: the energy flow and every layer flow by likelihood
(docs/models.md section 6.3).

Every step draws fresh noise: the flows see the raw showers (GeV layer images in memory) and
`L2LFlow.energy_flow_x` / `L2LFlow.window_inputs` turn a batch into (x, context) inside the compiled step.
Before a layer flow trains, its ActNorms are initialised from one batch (data-dependent initialisation)
and the per-layer voxel maxima are taken from the training showers.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from calozoo import stateless
from calozoo.models.l2lflow import L2LFlow
from calozoo.preprocessing.symmetry import alpha_symmetry_indices, apply_alpha_symmetry_images
from calozoo.training.likelihood import train_by_likelihood
from calozoo.training.settings import fit_validation_rows, merged_settings
from calozoo.training.trainer import TrainingResult

__all__ = ["DEFAULT_TRAINING", "train_l2lflow", "LayerData", "part_names"]

# docs/models.md section 6.3 (batch 1024). The energy flow's ExponentialLR gamma = (3e-3)^(1/2000) per epoch is a
# decay to 3e-3 of the rate over the run; the layer flows' OneCycle uses PyTorch's defaults and their gradients are
# clipped to a global norm of 100, as in the reference.
DEFAULT_TRAINING = {
    "validation_fraction": 0.1,
    "energy_flow": {"batch_size": 1024, "epochs": 2000,
                    "schedule": {"name": "exponential", "lr": 1e-3, "final_factor": 3e-3}},
    "layer_flows": {"batch_size": 1024, "epochs": 800, "clip_norm": 100.0,
                    "schedule": {"name": "onecycle", "max_lr": 6e-4, "div_factor": 25.0}},
}


def part_names(model: L2LFlow) -> list[str]:
    """The separately trained parts: 'energy_flow', then 'layer_flow' (shared) or 'layer_flow00' .. 'layer_flow44'."""
    if model.config.layer_flows == "shared":
        return ["energy_flow", "layer_flow"]
    return ["energy_flow"] + [f"layer_flow{i:02d}" for i in range(model.n_layers)]


class LayerData:
    """The raw training material (GeV layer images, incident energies, layer energies) and the seeded
    (x, context) batches built from it.

    Args:
        model: the L2LFlow whose preprocessing defines the inputs.
        showers, energies: (N, V) and (N, 1) MeV.
        augment_alpha: rotate and mirror the layer window of every row by a random whole number of alpha bins
            (all its layers alike) at each step; the energies are unchanged by it.
    """

    def __init__(self, model: L2LFlow, showers, energies, augment_alpha: bool = False):
        self.model = model
        self.augment_alpha = augment_alpha
        self.layers = model.layers_gev(np.asarray(showers, np.float32))  # (N, 45, r, alpha), a constant
        self.incident = np.asarray(energies, np.float64).reshape(-1, 1) / 1e3
        self.layer_energies = model.energies_after_cut(self.layers).numpy().astype(np.float64)
        self.n = len(self.incident)

    def arrays(self, part: str) -> list[np.ndarray]:
        """The row-aligned arrays `train_loop` batches for one part."""
        if part == "energy_flow":
            return [self.layer_energies, self.incident]
        if part == "layer_flow":  # shared: every (shower, layer) pair
            rows, layers = np.meshgrid(np.arange(self.n), np.arange(self.model.n_layers), indexing="ij")
            return [rows.ravel(), layers.ravel()]
        return [np.arange(self.n)]

    def _window(self, rows, layer_index):
        """Raw layers i, i - 1, ..., i - P (index clipped at 0) of each row, (B, P + 1, r, alpha)."""
        offsets = tf.range(self.model.config.previous_layers + 1)
        indices = tf.maximum(tf.cast(layer_index, tf.int32)[:, None] - offsets[None, :], 0)
        rows = tf.broadcast_to(tf.cast(rows, tf.int32)[:, None], tf.shape(indices))
        return tf.gather_nd(self.layers, tf.stack([rows, indices], axis=-1))

    def inputs(self, part: str, seed, *batch):
        """(x, context) of one batch of `arrays(part)`, with fresh noise from `seed` (int[2])."""
        model = self.model
        if part == "energy_flow":
            energies, incident = (tf.cast(b, model.dtype) for b in batch)
            return model.energy_flow_x(energies, incident, seed), model.incident_condition(incident)
        if part == "layer_flow":
            rows, layer_index = batch
            layer = None
        else:
            (rows,) = batch
            layer = int(part[len("layer_flow"):])
            layer_index = tf.fill(tf.shape(rows), layer)
        incident = tf.gather(tf.constant(self.incident, model.dtype), rows)
        window = self._window(rows, layer_index)
        if self.augment_alpha:  # its own seed; without augmentation the noise stream is unchanged
            seed, symmetry_seed = tf.unstack(stateless.split(seed, 2))
            indices = alpha_symmetry_indices(tf.shape(window)[0], model.n_alpha, symmetry_seed)
            window = apply_alpha_symmetry_images(window, indices)
        return model.window_inputs(window, layer_index, incident, seed, layer)

    def fixed_inputs(self, part: str, seed: int, chunk: int = 2048) -> list[tuple]:
        """(x, context) of every row with noise drawn once from `seed`, in chunks (validation)."""
        arrays = self.arrays(part)
        return [self.inputs(part, tf.constant([seed, start], tf.int64), *[a[start : start + chunk] for a in arrays])
                for start in range(0, len(arrays[0]), chunk)]


def trainable_parts(model: L2LFlow) -> dict:
    """The separately trained parts by name (`part_names`), each its flow."""
    return {part: _flow(model, part) for part in part_names(model)}


def _flow(model: L2LFlow, part: str):
    if part == "energy_flow":
        return model.energy_flow
    return model.layer_flow if part == "layer_flow" else model.layer_flows[int(part[len("layer_flow"):])]


def _validation_nll(flow, batches):
    log_prob = tf.function(lambda x, c: tf.reduce_sum(flow.log_prob(x, c)), reduce_retracing=True)
    count = sum(int(x.shape[0]) for x, _ in batches)
    return lambda: -sum(float(log_prob(x, c)) for x, c in batches) / count


def _train_part(model, part, train, valid, spec, checkpoint_dir, resume, seed, progress, strategy):
    flow = _flow(model, part)
    generator = tf.random.Generator.from_seed(seed + 101)
    if part != "energy_flow":
        arrays = train.arrays(part)
        first = np.random.default_rng(seed).permutation(len(arrays[0]))[: int(spec["batch_size"])]
        flow.initialize(*train.inputs(part, tf.constant([seed, 7], tf.int64), *[a[first] for a in arrays]))

    def inputs(*batch):
        return train.inputs(part, generator.make_seeds(1)[:, 0], *batch)

    return train_by_likelihood(flow, train.arrays(part), spec,
                               validation_nll=_validation_nll(flow, valid.fixed_inputs(part, seed + 1)),
                               checkpoint_dir=f"{checkpoint_dir}/{part}", inputs=inputs, resume=resume, seed=seed,
                               progress=progress, description=part, strategy=strategy)


def train_l2lflow(model: L2LFlow, showers, energies, checkpoint_dir, *, settings: dict | None = None,
                  epochs: int | None = None, resume: bool = False, seed: int = 0, progress: bool = True,
                  parts: tuple[str, ...] | None = None, strategy=None) -> dict[str, TrainingResult]:
    """Trains `model` on showers (N, V) / energies (N, 1) in MeV (a training split); one result per part.

    A further `validation_fraction` of the rows selects each part's best epoch. The voxel maxima per layer
    are set from the fitting rows first.

    Args:
        settings: {'validation_fraction', 'augment_alpha', 'energy_flow': {...}, 'layer_flows': {...}} with
            'batch_size', 'epochs', 'schedule' (see calozoo.training.schedules); 'layer_flows' applies to every
            layer flow. 'augment_alpha' (default False, the paper) rotates and mirrors the training windows in alpha
            (see calozoo.preprocessing.symmetry); the validation rows are never augmented.
        epochs: overrides every part's epoch count.
        parts: the parts to train (default all, see `part_names`).
    """
    settings = merged_settings(DEFAULT_TRAINING, settings)
    names = part_names(model)
    parts = names if parts is None else tuple(parts)
    unknown = sorted(set(parts) - set(names))
    if unknown:
        raise ValueError(f"`parts` {unknown} are not parts of this model; choose from {names}.")
    fit_rows, val_rows = fit_validation_rows(len(showers), settings["validation_fraction"], seed)
    model.set_layer_maxima(np.asarray(showers)[fit_rows])
    train = LayerData(model, np.asarray(showers)[fit_rows], np.asarray(energies)[fit_rows],
                      augment_alpha=bool(settings.get("augment_alpha", False)))
    valid = LayerData(model, np.asarray(showers)[val_rows], np.asarray(energies)[val_rows])
    results = {}
    for part in parts:
        spec = dict(settings["energy_flow" if part == "energy_flow" else "layer_flows"])
        if epochs is not None:
            spec["epochs"] = int(epochs)
        results[part] = _train_part(model, part, train, valid, spec, checkpoint_dir, resume, seed, progress,
                                    strategy)
    return results
