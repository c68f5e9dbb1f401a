"""Maximum-likelihood training of one conditional flow, the teacher recipe of the CaloFlow family."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from calozoo.training.schedules import make_schedule
from calozoo.training.trainer import TrainingResult, row_count, train_loop

__all__ = ["train_by_likelihood", "total_steps", "batches_per_epoch"]


def batches_per_epoch(spec: dict, n_rows: int) -> int:
    """Batches of an epoch (the last may be short), at most `spec["max_steps_per_epoch"]` if it is set."""
    batches = -(-n_rows // int(spec["batch_size"]))
    return min(batches, int(spec["max_steps_per_epoch"])) if spec.get("max_steps_per_epoch") else batches


def total_steps(spec: dict, n_rows: int) -> int:
    """Optimizer steps of a training part: epochs × batches per epoch."""
    return int(spec["epochs"]) * batches_per_epoch(spec, n_rows)


def train_by_likelihood(flow, train_arrays, spec: dict, *, validation_nll: Callable[[], float],
                        checkpoint_dir, inputs: Callable | None = None, resume: bool = False, seed: int = 0,
                        progress: bool = True, description: str = "flow", strategy=None) -> TrainingResult:
    """Trains `flow` on -mean log p(x | c); the epoch with the lowest `validation_nll()` is kept.

    Args:
        train_arrays: row-aligned arrays that `train_loop` batches, or a batch source (streamed rows).
        spec: {'batch_size', 'epochs', 'schedule', optionally 'jit_compile', 'clip_norm' and
            'max_steps_per_epoch'} (see `make_schedule`, `train_loop`).
        inputs: maps one batch of `train_arrays` to (x, c) inside the compiled step, e.g. to add fresh
            noise every step; by default the batch is (x, c) itself.
    """

    def loss_fn(*batch):
        x, c = inputs(*batch) if inputs is not None else batch
        nll = -tf.reduce_mean(flow.log_prob(x, c, training=True))
        return nll, nll

    return train_loop(flow, loss_fn, train_arrays, epochs=int(spec["epochs"]), batch_size=int(spec["batch_size"]),
                      learning_rate=make_schedule(spec["schedule"], total_steps(spec, row_count(train_arrays))),
                      checkpoint_dir=checkpoint_dir, evaluate=lambda _: float(validation_nll()),
                      metric_name="validation_nll", resume=resume, seed=seed, progress=progress,
                      description=description, jit_compile=bool(spec.get("jit_compile", False)) and strategy is None,
                      strategy=strategy, clip_norm=spec.get("clip_norm"),
                      max_steps_per_epoch=spec.get("max_steps_per_epoch"),
                      patience=spec.get("patience"))
