"""The shared training loop: loss decreases, a checkpoint per epoch, a killed run resumes losing at most one epoch."""

import json

import numpy as np
import pytest
import tensorflow as tf

from calozoo.errors import CalozooError
from calozoo.training.schedules import CyclicTriangular2, OneCycle
from calozoo.training.trainer import train_loop


class Line(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(0.0, dtype=tf.float64)


def _data():
    x = np.linspace(-1.0, 1.0, 64)
    return [x, 3.0 * x]


def _loss(module):
    def loss_fn(x, y):
        mse = tf.reduce_mean((module.w * x - y) ** 2)
        return mse, mse

    return loss_fn


def _train(module, directory, epochs, resume=False, kill_in_epoch=None):
    """`kill_in_epoch`: the process dies during that epoch, before its checkpoint is written."""
    epoch = {"n": 0}

    def evaluate(monitor):
        epoch["n"] += 1
        if epoch["n"] == kill_in_epoch:
            raise KeyboardInterrupt("killed")
        return monitor

    return train_loop(module, _loss(module), _data(), epochs=epochs, batch_size=16, learning_rate=0.05,
                      checkpoint_dir=directory, evaluate=evaluate, metric_name="mse", resume=resume, progress=False)


class RenamedLine(tf.Module):
    """`Line` with its weight under another attribute: a checkpoint of `Line` does not hold it."""

    def __init__(self):
        super().__init__()
        self.slope = tf.Variable(0.0, dtype=tf.float64)


def test_the_loss_decreases_and_the_best_epoch_is_kept(tmp_path):
    module = Line()
    result = _train(module, tmp_path, epochs=4)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0] and result.steps == 16
    assert (tmp_path / "last").is_dir() and (tmp_path / "best").is_dir()
    assert json.loads((tmp_path / "history.json").read_text())["history"][-1]["epoch"] == 4


def test_a_killed_run_resumes_from_the_last_finished_epoch(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _train(Line(), tmp_path, epochs=4, kill_in_epoch=3)
    assert [h["epoch"] for h in json.loads((tmp_path / "history.json").read_text())["history"]] == [1, 2]
    resumed = Line()
    result = _train(resumed, tmp_path, epochs=4, resume=True)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    uninterrupted = Line()
    _train(uninterrupted, tmp_path / "fresh", epochs=4)
    assert resumed.w.numpy() == pytest.approx(uninterrupted.w.numpy(), rel=1e-12)


def test_schedules_have_the_reference_shapes():
    one_cycle = OneCycle(max_lr=1e-3, total_steps=1000, pct_start=0.3)
    assert float(one_cycle(0)) == pytest.approx(1e-3 / 25, rel=1e-5)
    assert float(one_cycle(299)) == pytest.approx(1e-3, rel=1e-5)
    assert float(one_cycle(999)) == pytest.approx(1e-3 / 25 / 1e4, rel=1e-3)
    cyclic = CyclicTriangular2(base_lr=5e-5, max_lr=2e-3, step_size_up=850)
    assert float(cyclic(850)) == pytest.approx(2e-3, rel=1e-5)
    assert float(cyclic(2550)) == pytest.approx(5e-5 + (2e-3 - 5e-5) / 2, rel=1e-5)


@pytest.mark.parametrize("clip_norm, smallest_step, largest_step", [(None, 0.025, 0.05), (1e-9, 1e-6, 1e-4)])
def test_clip_norm_reaches_the_optimizer_through_the_likelihood_recipe(tmp_path, clip_norm, smallest_step,
                                                                       largest_step):
    """Adam's first step is about lr * |g| / (|g| + 3e-6): lr (0.05) when g is of order 1, 1.5e-5 once g is clipped
    to norm 1e-9 (legacy Adam's epsilon 1e-7 meets sqrt(v) = 0.03 |g| after one step)."""
    from calozoo.training.likelihood import train_by_likelihood

    class Gaussian(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(0.0, dtype=tf.float64)

        def log_prob(self, x, c, training=False):
            return -0.5 * (x - self.w * c) ** 2

    flow, x = Gaussian(), np.linspace(-1.0, 1.0, 64)
    spec = {"batch_size": 64, "epochs": 1, "schedule": {"name": "constant", "lr": 0.05}, "clip_norm": clip_norm}
    train_by_likelihood(flow, [x, 3.0 * x], spec, validation_nll=lambda: 0.0, checkpoint_dir=tmp_path,
                        progress=False)
    assert smallest_step < abs(float(flow.w.numpy())) <= largest_step


def test_weight_decay_uses_decoupled_adamw(tmp_path):
    """With a zero gradient AdamW only decays: w <- w (1 - lr wd) per step (PyTorch's AdamW); Adam would not move."""
    module = Line()
    module.w.assign(2.0)

    def zero_loss(x, y):
        loss = 0.0 * tf.reduce_sum(module.w * x)
        return loss, loss

    train_loop(module, zero_loss, _data(), epochs=1, batch_size=16, learning_rate=0.1, checkpoint_dir=tmp_path,
               evaluate=lambda monitor: monitor, metric_name="zero", progress=False, weight_decay=0.5)
    np.testing.assert_allclose(module.w.numpy(), 2.0 * (1.0 - 0.1 * 0.5) ** 4, rtol=1e-6)


def test_early_stopping_after_patience_epochs_without_improvement_and_a_resume_stays_stopped(tmp_path):
    metrics = iter([5.0, 3.0, 4.0, 4.5, 2.0, 1.0, 0.5, 0.2])  # best at epoch 2, then two worse epochs
    common = dict(epochs=8, batch_size=16, learning_rate=1e-2, checkpoint_dir=tmp_path, metric_name="m", patience=2,
                  progress=False)
    module = Line()
    result = train_loop(module, _loss(module), _data(), evaluate=lambda _: next(metrics), **common)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert result.best_epoch == 2
    resumed = train_loop(Line(), _loss(module), _data(), evaluate=lambda _: 0.0, resume=True, **common)
    assert resumed.epochs == 4 and resumed.best_epoch == 2


def test_resuming_from_a_checkpoint_without_every_weight_is_refused(tmp_path):
    """A checkpoint of another layout would leave the missing weights at their initial values: refused."""
    _train(Line(), tmp_path, epochs=2)
    other = RenamedLine()
    with pytest.raises(CalozooError, match="does not hold every weight of this model"):
        train_loop(other, lambda x, y: (tf.reduce_mean((other.slope * x - y) ** 2),) * 2, _data(), epochs=3,
                   batch_size=16, learning_rate=0.05, checkpoint_dir=tmp_path, evaluate=lambda m: m,
                   metric_name="mse", resume=True, progress=False)
