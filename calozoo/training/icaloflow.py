"""How iCaloFlow is trained: the teacher's three flows by likelihood, the student's Flow-2/3 by density distillation.

Every step draws fresh noise (as the reference's data loader does per item): the flows see the raw showers,
and `ICaloFlow.*_inputs` turn a batch into (x, condition) inside the compiled step. Flow-3 trains on one
row per (shower, layer n = 1..44) pair, gathered from the showers in memory, or, for showers on disk
(`calozoo.data.stream.ShowerRows`, files larger than memory), streamed: Flow-2 and Flow-3 batches come from a
shuffled tf.data pipeline over blocks of the files, and only Flow-1's layer energies (N x 45) are held in memory.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from calozoo import stateless
from calozoo.data.stream import ShowerBatches, ShowerRows
from calozoo.models.icaloflow import FLOW_NAMES, ICaloFlow
from calozoo.preprocessing.symmetry import alpha_symmetry_indices, apply_alpha_symmetry
from calozoo.training.distillation import adopt_permutations, copy_variables, train_by_distillation
from calozoo.training.likelihood import train_by_likelihood
from calozoo.training.settings import fit_validation_rows, merged_settings
from calozoo.training.trainer import TrainingResult

__all__ = ["TEACHER_TRAINING", "STUDENT_TRAINING", "train_icaloflow", "FlowData", "StreamedFlowData"]


def _onecycle(max_lr, div_factor, **extra):
    return {"name": "onecycle", "max_lr": max_lr, "div_factor": div_factor, **extra}


# The DS2 recipes of docs/models.md section 3.3 (batch 1000); the YAML configs override any entry.
TEACHER_TRAINING = {
    "validation_fraction": 0.3,
    "energy_flow": {"batch_size": 1000, "epochs": 500,
                    "schedule": _onecycle(1e-4, 10.0, final_div_factor=10.0, three_phase=True)},
    "first_layer_flow": {"batch_size": 1000, "epochs": 200, "schedule": _onecycle(1e-3, 50.0, three_phase=True)},
    "layer_flow": {"batch_size": 1000, "epochs": 60, "schedule": _onecycle(1e-3, 50.0, three_phase=True)},
}
STUDENT_TRAINING = {
    "validation_fraction": 0.3,
    "first_layer_flow": {"batch_size": 1000, "epochs": 400, "beta": 0.5, "schedule": _onecycle(1e-3, 25.0)},
    "layer_flow": {"batch_size": 1000, "epochs": 100, "beta": 0.5, "schedule": _onecycle(5e-4, 25.0)},
}


class FlowData:
    """The raw training material of the three flows, and the seeded (x, c) batches built from it.

    Args:
        model: the iCaloFlow whose `*_inputs` define the preprocessing.
        showers, energies: (N, V) and (N, 1) MeV.
    """

    def __init__(self, model: ICaloFlow, showers, energies, augment_alpha: bool = False):
        self.model = model
        self.augment_alpha = augment_alpha
        layers = np.asarray(showers, np.float64).reshape(-1, model.n_layers, model.layer_size)
        self.energies = np.asarray(energies, np.float64).reshape(-1, 1)
        self.layer_energies = layers.sum(axis=-1)
        self.first_layers = layers[:, 0]
        self.layers = tf.constant(layers, model.dtype)  # gathered per Flow-3 batch
        rows, later = np.meshgrid(np.arange(len(layers)), np.arange(1, model.n_layers), indexing="ij")
        self.layer_rows = [rows.ravel(), later.ravel()]

    def arrays(self, flow_name: str) -> list[np.ndarray]:
        """The row-aligned arrays `train_loop` batches for one flow."""
        if flow_name == "energy_flow":
            return [self.layer_energies, self.energies]
        if flow_name == "first_layer_flow":
            return [self.first_layers, self.energies]
        return self.layer_rows

    def inputs(self, flow_name: str, seed, *batch):
        """(x, c) of one batch of `arrays(flow_name)`, with fresh noise from `seed` (int[2])."""
        model = self.model
        if flow_name == "energy_flow":
            return model.energy_flow_inputs(tf.cast(batch[0], model.dtype), tf.cast(batch[1], model.dtype), seed)
        symmetry_seed = None
        if self.augment_alpha:  # its own seed; without augmentation the noise stream is unchanged
            seed, symmetry_seed = tf.unstack(stateless.split(seed, 2))
        if flow_name == "first_layer_flow":
            (layer,) = self._symmetric(symmetry_seed, tf.cast(batch[0], model.dtype))
            return model.first_layer_inputs(layer, tf.cast(batch[1], model.dtype), seed)
        layer, previous, incident, index = self._layer_batch(*batch)
        layer, previous = self._symmetric(symmetry_seed, layer, previous)
        return model.layer_inputs(layer, previous, incident, index, seed)

    def _layer_batch(self, rows, index):
        """Flow-3's (layer n, layer n - 1, incident energy, n) of a batch of (shower row, n) pairs."""
        layer = tf.gather_nd(self.layers, tf.stack([rows, index], axis=-1))
        previous = tf.gather_nd(self.layers, tf.stack([rows, index - 1], axis=-1))
        return layer, previous, tf.gather(tf.constant(self.energies, self.model.dtype), rows), index

    def _symmetric(self, seed, *layers):
        """With `augment_alpha`, the layers of each row rotated and mirrored in alpha alike (a random choice of
        the 2 n_alpha symmetries per row); otherwise unchanged."""
        if not self.augment_alpha:
            return layers
        n_alpha, n_r = self.model.config.layer_bins
        indices = alpha_symmetry_indices(tf.shape(layers[0])[0], n_alpha, seed)
        return tuple(apply_alpha_symmetry(layer, indices, n_r) for layer in layers)

    def fixed_inputs(self, flow_name: str, seed: int, chunk: int = 10_000) -> list[tuple]:
        """(x, c) of every row with noise drawn once from `seed`, in chunks of `chunk` rows (validation)."""
        arrays = self.arrays(flow_name)
        return [self.inputs(flow_name, tf.constant([seed, start], tf.int64),
                            *[a[start : start + chunk] for a in arrays])
                for start in range(0, len(arrays[0]), chunk)]


class StreamedFlowData(FlowData):
    """`FlowData` of showers on disk: Flow-1's arrays (layer energies, incident energies; N x 46 numbers) are read
    in one pass and held in memory, Flow-2 and Flow-3 batches are streamed (`ShowerBatches`), and the fixed
    validation inputs are rebuilt block by block at every evaluation (the same noise each time)."""

    def __init__(self, model: ICaloFlow, showers: ShowerRows, augment_alpha: bool = False):
        self.model, self.showers, self.augment_alpha = model, showers, augment_alpha
        self._energy_arrays = None

    @property
    def energies(self) -> np.ndarray:
        return self.showers.incident_energies()

    @property
    def layer_energies(self) -> np.ndarray:
        if self._energy_arrays is None:
            self._energy_arrays = np.concatenate([self._layers(showers).sum(axis=-1)
                                                  for _, _, showers in self.showers.blocks()])
        return self._energy_arrays

    def _layers(self, showers):
        return np.asarray(showers, np.float64).reshape(-1, self.model.n_layers, self.model.layer_size)

    def _first_layers(self, energies, showers):
        return showers[:, : self.model.layer_size], energies

    def _layer_pairs(self, energies, showers):
        """(layer n, layer n - 1, incident energy, n) for n = 1..44 of every shower, graph ops."""
        model = self.model
        layers = tf.reshape(showers, [-1, model.n_layers, model.layer_size])
        pairs = model.n_layers - 1
        count = tf.shape(layers)[0] * pairs
        index = tf.tile(tf.range(1, model.n_layers, dtype=tf.int64)[None], [tf.shape(layers)[0], 1])
        return (tf.reshape(layers[:, 1:], [count, model.layer_size]),
                tf.reshape(layers[:, :-1], [count, model.layer_size]),
                tf.reshape(tf.repeat(energies, pairs, axis=0), [count, 1]), tf.reshape(index, [count]))

    def arrays(self, flow_name: str):
        """Flow-1: the row-aligned arrays in memory; Flow-2/3: a `ShowerBatches` stream of the same batch layout
        as `inputs` takes (Flow-3: layer n, layer n - 1, incident energy, n)."""
        if flow_name == "energy_flow":
            return [self.layer_energies, self.energies]
        if flow_name == "first_layer_flow":
            return ShowerBatches(self.showers, self._first_layers, row_bytes=4 * self.model.layer_size)
        return ShowerBatches(self.showers, self._layer_pairs, rows_per_shower=self.model.n_layers - 1,
                             row_bytes=8 * self.model.layer_size)

    def _layer_batch(self, layer, previous, incident, index):
        dtype = self.model.dtype
        return tf.cast(layer, dtype), tf.cast(previous, dtype), tf.cast(incident, dtype), index

    def fixed_inputs(self, flow_name: str, seed: int, chunk: int = 2_000):
        """(x, c) in chunks of at most `chunk` rows, block by block, noise from (`seed`, the chunk's first row),
        rebuilt on every iteration (the same each time)."""
        if flow_name == "energy_flow":
            return super().fixed_inputs(flow_name, seed, chunk)
        expand, per_shower = ((self._first_layers, 1) if flow_name == "first_layer_flow"
                              else (self._layer_pairs, self.model.n_layers - 1))

        def chunks():
            for position, energies, showers in self.showers.blocks():
                rows = expand(tf.constant(energies), tf.constant(showers))
                for start in range(0, len(energies) * per_shower, chunk):
                    yield self.inputs(flow_name, tf.constant([seed, position * per_shower + start], tf.int64),
                                      *[r[start : start + chunk] for r in rows])

        return _Reiterable(chunks)


class _Reiterable:
    """An iterable whose every iteration calls `make()` afresh."""

    def __init__(self, make):
        self.make = make

    def __iter__(self):
        return iter(self.make())


def _validation_nll(flow, batches):
    """Mean -log p over fixed (x, c) chunks (a list, or an iterable re-read at every call), compiled once."""
    log_prob = tf.function(lambda x, c: tf.reduce_sum(flow.log_prob(x, c)), reduce_retracing=True)

    def nll():
        total, count = 0, 0
        for x, c in batches:
            total += float(log_prob(x, c))
            count += int(x.shape[0])
        return -total / count

    return nll


def _train_teacher_flow(model, flow_name, train, valid, spec, checkpoint_dir, resume, seed, progress,
                        strategy=None):
    generator = tf.random.Generator.from_seed(seed + 101)

    def inputs(*batch):
        return train.inputs(flow_name, generator.make_seeds(1)[:, 0], *batch)

    return train_by_likelihood(getattr(model, flow_name), train.arrays(flow_name), spec,
                               validation_nll=_validation_nll(getattr(model, flow_name),
                                                              valid.fixed_inputs(flow_name, seed + 1)),
                               checkpoint_dir=f"{checkpoint_dir}/{flow_name}", inputs=inputs, resume=resume,
                               seed=seed, progress=progress, description=flow_name,
                               strategy=strategy)


def _distill_flow(student, teacher, flow_name, train, spec, checkpoint_dir, resume, seed, progress,
                  strategy=None):
    def inputs(generator, *batch):
        x, condition = train.inputs(flow_name, generator.make_seeds(1)[:, 0], *batch)
        return x, condition, condition  # iCaloFlow's z-pass reuses the data conditions

    return train_by_distillation(getattr(teacher, flow_name), getattr(student, flow_name), train.arrays(flow_name),
                                 spec, inputs=inputs, checkpoint_dir=f"{checkpoint_dir}/{flow_name}", resume=resume,
                                 seed=seed, progress=progress, description=f"student {flow_name}",
                                 strategy=strategy)


def trainable_parts(model: ICaloFlow) -> dict:
    """The flows `train_icaloflow` trains, by name: all three for a teacher, Flow-2/3 for a student (whose Flow-1
    is its teacher's)."""
    names = FLOW_NAMES if model.config.role == "teacher" else FLOW_NAMES[1:]
    return {name: getattr(model, name) for name in names}


def adopt_teacher_parts(student: ICaloFlow, teacher: ICaloFlow) -> None:
    """The student reuses the teacher's Flow-1 and, position by position, the permutations of Flow-2/3."""
    reasons = {"energy_variables": "it reuses the teacher's Flow-1",
               "energy_fraction_factor": "it reuses the teacher's Flow-1",
               "previous_shape_condition": "the teacher scores the student's Flow-3 samples under that condition"}
    for key, reason in reasons.items():
        if getattr(student.config, key) != getattr(teacher.config, key):
            raise ValueError(f"The student's `{key}` ({getattr(student.config, key)!r}) must be its teacher's "
                             f"({getattr(teacher.config, key)!r}): {reason}.")
    copy_variables(student.energy_flow, teacher.energy_flow)
    for flow_name in FLOW_NAMES[1:]:
        adopt_permutations(getattr(student, flow_name), getattr(teacher, flow_name))


def train_icaloflow(model: ICaloFlow, showers, energies, checkpoint_dir, *, teacher: ICaloFlow | None = None,
                    settings: dict | None = None, epochs: int | None = None, resume: bool = False, seed: int = 0,
                    progress: bool = True, parts: tuple[str, ...] | None = None,
                    strategy=None) -> dict[str, TrainingResult]:
    """Trains `model` on showers (N, V) / energies (N, 1) in MeV (a training split); one result per trained flow.

    A teacher trains Flow-1, Flow-2 and Flow-3 by likelihood, keeping each flow's best epoch on a further
    `validation_fraction` split; a student needs a trained `teacher`, takes its Flow-1 and permutations and
    distils Flow-2 and Flow-3 from it (best epoch by mean KL). `settings["augment_alpha"]` (default False, the
    paper) rotates and mirrors the training layers of Flow-2/3 by random whole alpha bins at every step (see
    calozoo.preprocessing.symmetry); the validation rows are never augmented.

    Args:
        showers: (N, V) MeV in memory, or a `calozoo.data.stream.ShowerRows` (rows of files on disk, streamed;
            `energies` is then ignored: the files' own are used).
        settings: per-flow {'batch_size', 'epochs', 'schedule', ('beta')} overriding the paper recipe.
        epochs: overrides every flow's epoch count.
        parts: the flows to train (default: all of the role's).
    """
    if model.config.role == "teacher":
        settings, trainable = merged_settings(TEACHER_TRAINING, settings), FLOW_NAMES
    elif teacher is None or teacher.config.role != "teacher":
        raise ValueError("Training an iCaloFlow student needs a trained teacher: pass `teacher=` "
                         "(see `calozoo train --teacher`).")
    else:
        settings, trainable = merged_settings(STUDENT_TRAINING, settings), FLOW_NAMES[1:]
    parts = trainable if parts is None else tuple(parts)
    unknown = sorted(set(parts) - set(trainable))
    if unknown:
        raise ValueError(f"`parts` {unknown} cannot be trained for a {model.config.role}; "
                         f"choose from {list(trainable)}.")
    if epochs is not None:
        for flow_name in parts:
            settings[flow_name]["epochs"] = int(epochs)
    fit_rows, val_rows = fit_validation_rows(len(showers), settings["validation_fraction"], seed)
    augment = bool(settings.get("augment_alpha", False))

    def flow_data(positions, augment_alpha=False):
        if isinstance(showers, ShowerRows):  # on disk: `energies` are those of its rows
            return StreamedFlowData(model, showers.take(positions), augment_alpha=augment_alpha)
        return FlowData(model, showers[positions], energies[positions], augment_alpha=augment_alpha)

    train = flow_data(fit_rows, augment)
    if model.config.role == "teacher":
        valid = flow_data(val_rows)
        return {name: _train_teacher_flow(model, name, train, valid, settings[name], checkpoint_dir, resume, seed,
                                          progress, strategy) for name in parts}
    adopt_teacher_parts(student=model, teacher=teacher)
    return {name: _distill_flow(model, teacher, name, train, settings[name], checkpoint_dir, resume, seed, progress,
                                strategy)
            for name in parts}
