"""The training loop every family uses: seeded epochs, a progress bar, a checkpoint per epoch, resume, best model."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras
from tqdm.auto import tqdm

__all__ = ["TrainingResult", "train_loop", "chi2"]


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


def _batches(arrays: Sequence[np.ndarray], batch_size: int, rng: np.random.Generator):
    order = rng.permutation(len(arrays[0]))
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield [a[index] for a in arrays]


def train_loop(
    module: tf.Module,
    loss_fn: Callable,
    train_arrays: Sequence[np.ndarray],
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
) -> TrainingResult:
    """Trains `variables` (default: the module's trainable ones) by Adam on `loss_fn(*batch) -> (loss, monitor)`.

    After every epoch `evaluate(mean monitor of the epoch)` gives the selection metric (lower is better); the epoch with the lowest
    one is kept in `<checkpoint_dir>/best`, and the whole state (weights, optimizer, epoch, history) in
    `<checkpoint_dir>/last`, so a killed run resumed with `resume=True` loses at most the current epoch.
    At the end the best weights are loaded into `module`. `jit_compile=True` compiles the step with XLA
    (much faster for the element-wise spline arithmetic on CPU; each new batch shape compiles once more).
    """
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    variables = list(variables if variables is not None else module.trainable_variables)
    optimizer = tf_keras.optimizers.legacy.Adam(learning_rate=learning_rate)
    epoch_var = tf.Variable(0, dtype=tf.int64, name="epoch")
    state = tf.train.Checkpoint(module=module, optimizer=optimizer, epoch=epoch_var)
    manager = tf.train.CheckpointManager(state, checkpoint_dir / "last", max_to_keep=1)
    best = tf.train.Checkpoint(module=module)
    history_file = checkpoint_dir / "history.json"
    history, elapsed = [], 0.0
    if resume and manager.latest_checkpoint:
        state.restore(manager.latest_checkpoint)
        saved = json.loads(history_file.read_text()) if history_file.exists() else {}
        history, elapsed = saved.get("history", []), saved.get("wall_time_s", 0.0)

    @tf.function(reduce_retracing=True, jit_compile=jit_compile)
    def step(*batch):
        with tf.GradientTape() as tape:
            loss, monitor = loss_fn(*batch)
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss, monitor

    steps_per_epoch = -(-len(train_arrays[0]) // batch_size)
    for epoch in range(int(epoch_var.numpy()), epochs):
        started = time.perf_counter()
        rng = np.random.default_rng([seed, epoch])
        losses, monitors = [], []
        bar = tqdm(_batches(train_arrays, batch_size, rng), total=steps_per_epoch, disable=not progress,
                   desc=f"{description} {epoch + 1}/{epochs}", leave=False)
        for batch in bar:
            loss, monitor = step(*batch)
            losses.append(float(loss))
            monitors.append(float(monitor))
            bar.set_postfix(loss=f"{losses[-1]:.4g}")
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
    return TrainingResult(epochs=epochs, steps=epochs * steps_per_epoch, wall_time_s=elapsed, history=history,
                          best_epoch=best_entry["epoch"], best_metric=best_entry[metric_name], metric_name=metric_name)
