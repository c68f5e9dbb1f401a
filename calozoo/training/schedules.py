"""Per-step learning-rate schedules of the reference trainings (OneCycleLR, CyclicLR triangular2, MultiStepLR,
cosine annealing, exponential decay) and the gradient-accumulation schedule of CaloFlow's CaloGAN student
(batches per optimizer step growing with the epoch)."""

import math

import tensorflow as tf
import tf_keras

__all__ = ["OneCycle", "CyclicTriangular2", "multistep", "make_schedule", "accumulation_schedule",
           "optimizer_steps_per_epoch"]


class OneCycle(tf_keras.optimizers.schedules.LearningRateSchedule):
    """Cosine one-cycle: max_lr/div up to max_lr over pct_start of the steps, then down to max_lr/(div·final_div).

    With `three_phase=True` the second phase returns to max_lr/div symmetrically and a third anneals to the end.
    Momentum cycling of PyTorch's version is not reproduced (Adam's beta_1 stays fixed).
    """

    def __init__(self, max_lr, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4, three_phase=False):
        if total_steps < 1:
            raise ValueError(f"`total_steps` must be >= 1; got {total_steps}.")
        self.max_lr, self.total_steps, self.pct_start = float(max_lr), int(total_steps), float(pct_start)
        self.div_factor, self.final_div_factor, self.three_phase = (float(div_factor), float(final_div_factor),
                                                                    bool(three_phase))

    def _phases(self):
        initial = self.max_lr / self.div_factor
        final = initial / self.final_div_factor
        up = float(self.pct_start * self.total_steps) - 1.0
        if self.three_phase:
            return [(up, initial, self.max_lr), (2 * up, self.max_lr, initial),
                    (self.total_steps - 1.0, initial, final)]
        return [(up, initial, self.max_lr), (self.total_steps - 1.0, self.max_lr, final)]

    def __call__(self, step):
        step = tf.cast(tf.minimum(step, self.total_steps - 1), tf.float32)
        start = 0.0
        result = None
        for end, lr_from, lr_to in self._phases():
            fraction = tf.clip_by_value((step - start) / max(end - start, 1e-9), 0.0, 1.0)
            value = lr_to + (lr_from - lr_to) / 2.0 * (1.0 + tf.cos(math.pi * fraction))
            result = value if result is None else tf.where(step > start, value, result)
            start = end
        return result

    def get_config(self):
        return dict(max_lr=self.max_lr, total_steps=self.total_steps, pct_start=self.pct_start,
                    div_factor=self.div_factor, final_div_factor=self.final_div_factor, three_phase=self.three_phase)


class CyclicTriangular2(tf_keras.optimizers.schedules.LearningRateSchedule):
    """Triangular cycles between base_lr and max_lr whose amplitude halves every cycle (PyTorch 'triangular2')."""

    def __init__(self, base_lr, max_lr, step_size_up):
        self.base_lr, self.max_lr, self.step_size_up = float(base_lr), float(max_lr), int(step_size_up)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        cycle = tf.floor(1.0 + step / (2.0 * self.step_size_up))
        x = tf.abs(step / self.step_size_up - 2.0 * cycle + 1.0)
        scale = 1.0 / tf.pow(2.0, cycle - 1.0)
        return self.base_lr + (self.max_lr - self.base_lr) * tf.maximum(0.0, 1.0 - x) * scale

    def get_config(self):
        return dict(base_lr=self.base_lr, max_lr=self.max_lr, step_size_up=self.step_size_up)


def multistep(lr, milestone_fractions, gamma, total_steps, epoch_steps=None):
    """lr, multiplied by `gamma` at each milestone; milestones are fractions of the run (PyTorch MultiStepLR with
    milestones given relative to the total, so that a shorter or longer run keeps the schedule's shape).

    With `epoch_steps` (optimizer steps of each epoch, e.g. under gradient accumulation) a milestone falls at the
    start of epoch round(fraction x epochs), as PyTorch's per-epoch MultiStepLR does."""
    fractions = sorted(float(f) for f in milestone_fractions)
    if any(not 0.0 < f < 1.0 for f in fractions):
        raise ValueError(f"`milestone_fractions` must lie in (0, 1); got {fractions}.")
    if epoch_steps is None:
        boundaries = [int(round(f * total_steps)) for f in fractions]
    else:
        # PiecewiseConstantDecay keeps the old value at the boundary itself: the last step of the epoch before.
        boundaries = [max(0, int(sum(epoch_steps[: int(round(f * len(epoch_steps)))])) - 1) for f in fractions]
    values = [float(lr) * float(gamma) ** k for k in range(len(boundaries) + 1)]
    return tf_keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def exponential(lr, final_factor, total_steps):
    """lr decaying exponentially to lr * `final_factor` at the end of the run (PyTorch ExponentialLR with
    gamma = final_factor^(1/epochs), stepped per optimizer step here)."""
    if not 0.0 < float(final_factor) <= 1.0:
        raise ValueError(f"`final_factor` must lie in (0, 1]; got {final_factor}.")
    return tf_keras.optimizers.schedules.ExponentialDecay(float(lr), max(int(total_steps), 1), float(final_factor))


def make_schedule(spec: dict, total_steps: int, epoch_steps=None):
    """A schedule from a config dict: {'name': 'onecycle'|'cyclic'|'multistep'|'cosine'|'exponential'|'constant',
    ...}; OneCycle, multistep, cosine (PyTorch CosineAnnealingLR stepped per batch, from `lr` to 0) and exponential
    span `total_steps` (multistep: milestones at epoch starts if `epoch_steps` is given)."""
    spec = dict(spec)
    name = spec.pop("name", "constant")
    if name == "onecycle":
        return OneCycle(total_steps=total_steps, **spec)
    if name == "cyclic":
        return CyclicTriangular2(**spec)
    if name == "multistep":
        return multistep(total_steps=total_steps, epoch_steps=epoch_steps, **spec)
    if name == "cosine":
        return tf_keras.optimizers.schedules.CosineDecay(float(spec.get("lr", 1e-3)), total_steps)
    if name == "exponential":
        return exponential(total_steps=total_steps, **spec)
    if name == "constant":
        return float(spec.get("lr", 1e-4))
    raise ValueError(f"Unknown learning-rate schedule '{name}'; "
                     "expected 'onecycle', 'cyclic', 'multistep', 'cosine', 'exponential' or 'constant'.")


def accumulation_schedule(spec: dict | None, epochs: int):
    """Batches per optimizer step as a function of the epoch (0-based), from {'fractions': [f1, ...],
    'batches': [k0, k1, ...]}: k0 before epoch round(f1 x epochs), k1 from there, and so on.

    CaloFlow's CaloGAN student: fractions [0.1, 0.4, 0.7] and batches [2, 4, 8, 16] of a 100-epoch run (one step per
    2 batches for epochs < 10, 4 for < 40, 8 for < 70, then 16). None gives one batch per step throughout.
    """
    if spec is None:
        return lambda epoch: 1
    fractions, batches = [float(f) for f in spec["fractions"]], [int(k) for k in spec["batches"]]
    if len(batches) != len(fractions) + 1 or min(batches) < 1 or fractions != sorted(fractions):
        raise ValueError(f"`accumulation` needs increasing `fractions` and one more `batches` entry (each >= 1); "
                         f"got fractions {fractions} and batches {batches}.")
    starts = [int(round(f * epochs)) for f in fractions]
    return lambda epoch: batches[sum(epoch >= start for start in starts)]


def optimizer_steps_per_epoch(n_batches: int, epochs: int, accumulation) -> list[int]:
    """Optimizer steps in each epoch of `n_batches` batches when `accumulation(epoch)` batches make one step
    (a last partial group of batches still makes a step)."""
    return [-(-n_batches // accumulation(epoch)) for epoch in range(epochs)]
