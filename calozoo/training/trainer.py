"""The training loop every family uses: seeded epochs, a progress bar, a checkpoint per epoch, resume, best model."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras
from tqdm.auto import tqdm

from calozoo.errors import CalozooError

__all__ = ["TrainingResult", "train_loop", "chi2", "row_count", "CHECKPOINTS_ONLY"]


@dataclasses.dataclass
class TrainingResult:
    """What a training run did: steps, wall time, the selection metric per epoch and the best epoch."""

    epochs: int
    steps: int
    wall_time_s: float
    history: list
    best_epoch: int
    best_metric: float
    metric_name: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def chi2(a, b):
    """Batch mean of the squared difference summed over every non-batch axis."""
    difference = tf.reshape(a - b, [tf.shape(a)[0], -1])
    return tf.reduce_mean(tf.reduce_sum(difference**2, axis=-1))


def row_count(train_arrays) -> int:
    """Rows per epoch of `train_loop`'s training data: row-aligned arrays, or a batch source with `n_rows`."""
    return train_arrays.n_rows if hasattr(train_arrays, "batches") else len(train_arrays[0])


def _batches(train_arrays, batch_size: int, seed: int, epoch: int):
    """The epoch's batches: a seeded permutation of in-memory arrays, or those of a batch source (streamed rows,
    see calozoo.data.stream.ShowerBatches) for the same seed and epoch."""
    if hasattr(train_arrays, "batches"):
        yield from train_arrays.batches(batch_size, seed, epoch)
        return
    order = np.random.default_rng([seed, epoch]).permutation(len(train_arrays[0]))
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield [a[index] for a in train_arrays]


def _restore(state: tf.train.Checkpoint, path: str) -> None:
    """Restores a resumed run's checkpoint; one that lacks some of the model's weights (written by another
    configuration or an older layout of calozoo's networks) is refused rather than half loaded."""
    try:
        state.restore(path).assert_existing_objects_matched()
    except AssertionError as error:
        raise CalozooError(f"Cannot resume from {path}: it does not hold every weight of this model ({error}). "
                           "Start the run again without --resume, or in a fresh --workdir.") from None


def _make_step(loss_fn, variables, optimizer, strategy, jit_compile=False):
    """One optimizer step on a batch (a list of arrays); with a strategy, on per-replica slices of it."""
    if strategy is not None and jit_compile:
        raise ValueError("`jit_compile=True` and a distribution `strategy` are not supported together in "
                         "`train_loop`; pass one of them.")
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1

    def replica_step(*batch):
        with tf.GradientTape() as tape:
            loss, monitor = loss_fn(*batch)
            replica_share = loss if replicas == 1 else loss / replicas
        gradients = tape.gradient(replica_share, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss, monitor

    if strategy is None:
        return tf.function(replica_step, reduce_retracing=True, jit_compile=jit_compile)

    @tf.function(reduce_retracing=True)
    def distributed_step(per_replica_batch):
        loss, monitor = strategy.run(replica_step, args=tuple(per_replica_batch))
        mean = tf.distribute.ReduceOp.MEAN
        return strategy.reduce(mean, loss, axis=None), strategy.reduce(mean, monitor, axis=None)

    def step(*batch):
        def slice_for(context):
            return [a[context.replica_id_in_sync_group :: context.num_replicas_in_sync] for a in batch]

        return distributed_step(strategy.experimental_distribute_values_from_function(slice_for))

    return step


class _AccumulatingStep:
    """Gradients of several batches summed in variables; `apply(count)` takes one optimizer step with their mean."""

    def __init__(self, loss_fn, variables, optimizer, jit_compile=False):
        self.variables, self.optimizer = variables, optimizer
        self.sums = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]

        def accumulate(*batch):
            with tf.GradientTape() as tape:
                loss, monitor = loss_fn(*batch)
            for total, gradient in zip(self.sums, tape.gradient(loss, variables)):
                total.assign_add(gradient)
            return loss, monitor

        def apply(count):
            count = tf.cast(count, variables[0].dtype)
            optimizer.apply_gradients([(total / count, v) for total, v in zip(self.sums, variables)])
            for total in self.sums:
                total.assign(tf.zeros_like(total))

        self.accumulate = tf.function(accumulate, reduce_retracing=True, jit_compile=jit_compile)
        self.apply = tf.function(apply)


def _run_epoch(batches, step, accumulator, group: int, bar):
    """One epoch's losses and monitors; with an `accumulator`, one optimizer step per `group` batches."""
    losses, monitors, pending = [], [], 0
    for batch in batches:
        loss, monitor = (accumulator.accumulate if accumulator is not None else step)(*batch)
        losses.append(float(loss))
        monitors.append(float(monitor))
        bar.set_postfix(loss=f"{losses[-1]:.4g}")
        if accumulator is not None:
            pending += 1
            if pending == group:
                accumulator.apply(pending)
                pending = 0
    if accumulator is not None and pending:
        accumulator.apply(pending)
    return losses, monitors


def _patience_exhausted(history: list[dict], metric_name: str, patience: int | None) -> bool:
    """True when the last `patience` epochs of `history` all came after its best one (early stopping)."""
    if not patience or not history:
        return False
    best_index = min(range(len(history)), key=lambda i: history[i][metric_name])
    return len(history) - 1 - best_index >= int(patience)


CHECKPOINTS_ONLY = "checkpoints-only"


def _require_finished(description: str, checkpoint_dir: Path, done: int, epochs: int, stopped_early: bool) -> None:
    """For `resume=CHECKPOINTS_ONLY`: the checkpoints must hold a finished training of this part."""
    if done == 0:
        raise CalozooError(f"{description}: no checkpoint in {checkpoint_dir}; train this part first.")
    if done < epochs and not stopped_early:
        raise CalozooError(f"{description}: the checkpoints in {checkpoint_dir} stop at epoch {done} of {epochs}; "
                           f"continue the training with --resume.")


def train_loop(
    module: tf.Module,
    loss_fn: Callable,
    train_arrays,
    *,
    epochs: int,
    batch_size: int,
    learning_rate,
    checkpoint_dir: str | Path,
    evaluate: Callable[[float], float],
    metric_name: str,
    variables: Sequence[tf.Variable] | None = None,
    resume: bool = False,
    seed: int = 0,
    progress: bool = True,
    description: str = "train",
    jit_compile: bool = False,
    strategy: tf.distribute.Strategy | None = None,
    clip_norm: float | None = None,
    accumulation: Callable[[int], int] | None = None,
    weight_decay: float | None = None,
    max_steps_per_epoch: int | None = None,
    patience: int | None = None,
) -> TrainingResult:
    """Trains `variables` (default: the module's trainable ones) by Adam on `loss_fn(*batch) -> (loss, monitor)`.

    After every epoch `evaluate(mean monitor of the epoch)` gives the selection metric (lower is better); the epoch with
    the lowest one is kept in `<checkpoint_dir>/best`, and the whole state (weights, optimizer, epoch, history) in
    `<checkpoint_dir>/last`, so a killed run resumed with `resume=True` loses at most the current epoch.
    At the end the best weights are loaded into `module`. `train_arrays` are row-aligned arrays (a seeded
    permutation of their rows per epoch) or a batch source such as `calozoo.data.stream.ShowerBatches` (rows
    streamed from disk): an object with `n_rows` and `batches(batch_size, seed, epoch)`, seeded alike.
    `jit_compile=True` compiles the step with XLA, which fuses the many small elementwise ops of spline flows
    (about 2x faster on CPU).

    With a `strategy` (see `calozoo.training.distribute.make_strategy`; build `module` inside its scope) every
    batch is cut into one slice per replica, each replica takes the gradient of its slice's loss divided by the
    number of replicas, and the optimizer sums them: with equal slices this is the gradient of the whole batch.
    `clip_norm` rescales each step's gradients to at most that global norm (PyTorch's clip_grad_norm_).
    Under MultiWorkerMirroredStrategy give each worker its own `checkpoint_dir` (`worker_checkpoint_dir`).

    With `accumulation` (epoch -> k, see `schedules.accumulation_schedule`) the gradients of k batches are
    averaged into one optimizer step (CaloFlow's CaloGAN student); a learning-rate schedule then counts
    optimizer steps, not batches. Not combined with a `strategy`.

    With `weight_decay` the optimizer is AdamW (decoupled weight decay, lr x weight_decay per step, as PyTorch's).

    `max_steps_per_epoch` ends every epoch after that many batches (quick checks on large input).
    `patience` stops early once that many epochs in a row have not improved on the best metric (a resumed run
    that had stopped stays stopped); the best epoch's weights are loaded as always.

    `resume=CHECKPOINTS_ONLY` trains nothing: it loads the best weights of a finished run from `checkpoint_dir`
    (one that reached `epochs` or stopped early) and raises CalozooError for an unfinished or missing one.
    """
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    variables = list(variables if variables is not None else module.trainable_variables)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        if weight_decay:
            optimizer = tf_keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=float(weight_decay),
                                                  global_clipnorm=clip_norm, jit_compile=False)
        else:
            optimizer = tf_keras.optimizers.legacy.Adam(learning_rate=learning_rate, global_clipnorm=clip_norm)
    epoch_var = tf.Variable(0, dtype=tf.int64, name="epoch")
    state = tf.train.Checkpoint(module=module, optimizer=optimizer, epoch=epoch_var)
    manager = tf.train.CheckpointManager(state, checkpoint_dir / "last", max_to_keep=1)
    best = tf.train.Checkpoint(module=module)
    history_file = checkpoint_dir / "history.json"
    history, elapsed = [], 0.0
    if resume and manager.latest_checkpoint:
        _restore(state, manager.latest_checkpoint)
        saved = json.loads(history_file.read_text()) if history_file.exists() else {}
        history, elapsed = saved.get("history", []), saved.get("wall_time_s", 0.0)
    if resume == CHECKPOINTS_ONLY:
        _require_finished(description, checkpoint_dir, int(epoch_var.numpy()), epochs,
                          _patience_exhausted(history, metric_name, patience))

    step = _make_step(loss_fn, variables, optimizer, strategy, jit_compile)
    accumulator = None
    if accumulation is not None:
        if strategy is not None:
            raise ValueError("Gradient `accumulation` and a distribution `strategy` are not supported together.")
        accumulator = _AccumulatingStep(loss_fn, variables, optimizer, jit_compile)

    steps_per_epoch = -(-row_count(train_arrays) // batch_size)
    if max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, int(max_steps_per_epoch))
    for epoch in range(int(epoch_var.numpy()), epochs):
        if _patience_exhausted(history, metric_name, patience):
            break
        started = time.perf_counter()
        batches = itertools.islice(_batches(train_arrays, batch_size, seed, epoch), steps_per_epoch)
        bar = tqdm(batches, total=steps_per_epoch, disable=not progress,
                   desc=f"{description} {epoch + 1}/{epochs}", leave=False)
        group = accumulation(epoch) if accumulation is not None else 1
        losses, monitors = _run_epoch(bar, step, accumulator, group, bar)
        metric = float(evaluate(float(np.mean(monitors))))
        elapsed += time.perf_counter() - started
        history.append(dict(epoch=epoch + 1, loss=float(np.mean(losses)), monitor=float(np.mean(monitors)),
                            **{metric_name: metric}))
        if metric <= min(h[metric_name] for h in history):
            best.write(str(checkpoint_dir / "best" / "weights"))
        epoch_var.assign(epoch + 1)
        manager.save()
        history_file.write_text(json.dumps(dict(history=history, wall_time_s=elapsed), indent=1))
        if progress:
            tqdm.write(f"{description} epoch {epoch + 1}/{epochs}: loss {history[-1]['loss']:.5g}, "
                       f"{metric_name} {metric:.5g}")
    if not history:
        raise ValueError(f"Nothing was trained: `epochs` is {epochs} and the checkpoint is already at that epoch.")
    best.read(str(checkpoint_dir / "best" / "weights")).assert_existing_objects_matched()
    best_entry = min(history, key=lambda h: h[metric_name])
    return TrainingResult(epochs=len(history), steps=len(history) * steps_per_epoch, wall_time_s=elapsed,
                          history=history, best_epoch=best_entry["epoch"], best_metric=best_entry[metric_name],
                          metric_name=metric_name)
