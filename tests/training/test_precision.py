"""Tests of calozoo.training.precision: the MADE products in bfloat16, weights and log-densities in float32."""

import numpy as np
import pytest
import tensorflow as tf

from calozoo.bijectors.autoregressive_flow import AutoregressiveRQSFlow
from calozoo.bijectors.made import MADE
from calozoo.errors import CalozooError
from calozoo.training.precision import network_precision, set_network_precision
from calozoo.training.trainer import train_loop
from calozoo.workflow.recipe import train_to_artifact


def test_bfloat16_products_stay_close_and_return_the_weights_dtype():
    made = MADE(features=6, context=2, hidden=32, params_per_feature=5, num_blocks=1, seed=0, dtype=tf.float32)
    rng = np.random.default_rng(0)
    x, c = rng.normal(size=(64, 6)), rng.normal(size=(64, 2))
    full = made(x, c).numpy()
    assert set_network_precision(made, "mixed_bfloat16") == 1
    mixed = made(x, c)
    assert mixed.dtype == tf.float32
    error = np.abs(mixed.numpy() - full).max() / np.abs(full).max()
    assert 1e-5 < error < 3e-2  # bfloat16 keeps 8 bits of mantissa: visibly rounded, never far off
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(made(x, c) ** 2)
    gradients = tape.gradient(loss, made.trainable_variables)
    assert all(g is not None and g.dtype == tf.float32 for g in gradients)
    set_network_precision(made, "default")
    np.testing.assert_array_equal(made(x, c).numpy(), full)


def test_the_context_manager_restores_the_weights_dtype_and_refuses_what_it_cannot_do():
    flow = AutoregressiveRQSFlow(features=4, context=1, hidden=8, num_blocks=2, seed=0, dtype=tf.float32,
                                 permutations=[np.array([3, 2, 1, 0])])
    with network_precision(flow, "mixed_bfloat16"):
        assert all(m.compute_dtype == tf.bfloat16 for m in flow.mades)
    assert all(m.compute_dtype is None for m in flow.mades)
    with pytest.raises(ValueError, match="precision"):
        set_network_precision(flow, "float16")
    with pytest.raises(ValueError, match="no MADE"):
        with network_precision(tf.Module(), "mixed_bfloat16"):
            pass


def test_a_flow_trains_in_mixed_precision_and_its_log_density_stays_float32(tmp_path):
    flow = AutoregressiveRQSFlow(features=4, context=1, hidden=16, num_blocks=2, seed=0, dtype=tf.float32,
                                 permutations=[np.array([3, 2, 1, 0])])
    rng = np.random.default_rng(1)
    c = rng.normal(size=(256, 1)).astype(np.float32)
    x = (c * np.array([1.0, -0.5, 0.3, 2.0]) + 0.3 * rng.normal(size=(256, 4))).astype(np.float32)

    def loss_fn(xb, cb):
        loss = -tf.reduce_mean(flow.log_prob(xb, cb))
        return loss, loss

    with network_precision(flow, "mixed_bfloat16"):
        before = float(loss_fn(x, c)[0])
        result = train_loop(flow, loss_fn, (x, c), epochs=2, batch_size=64, learning_rate=5e-3,
                            checkpoint_dir=tmp_path, evaluate=lambda monitor: monitor, metric_name="nll",
                            progress=False)
        assert flow.log_prob(x, c).dtype == tf.float32
    assert all(v.dtype == tf.float32 for v in flow.trainable_variables)
    assert result.history[-1]["loss"] < before


def test_an_unknown_precision_in_the_recipe_is_one_clear_error(tmp_path):
    with pytest.raises(CalozooError, match="precision='float8'"):
        train_to_artifact("caloflow-ds1-photon-teacher", str(tmp_path / "missing.h5"), variant="compact",
                          training_overrides={"precision": "float8"}, output_root=tmp_path, workdir=tmp_path)
