"""One worker of the two-process MultiWorkerMirroredStrategy test (run as a script, TF_CONFIG set by the test).

Usage: python multiworker_worker.py OUT_DIR STRATEGY   (STRATEGY: multiworker, or none for the reference run)
Trains a tiny conditional flow for a few steps and writes OUT_DIR/result-<worker>.npz and .json.
"""

import json
import sys
from pathlib import Path

from calozoo.training.distribute import make_strategy, worker_checkpoint_dir, worker_index

out, strategy_name = Path(sys.argv[1]), sys.argv[2]
strategy = make_strategy(strategy_name)  # before any other TensorFlow op, as MultiWorkerMirroredStrategy needs

import contextlib  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from calozoo.bijectors.autoregressive_flow import AutoregressiveRQSFlow  # noqa: E402
from calozoo.training.trainer import train_loop  # noqa: E402


def data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    context = rng.uniform(-1.0, 1.0, (n, 1))
    x = 2.0 * context + 0.3 * rng.normal(size=(n, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    return x, context


with strategy.scope() if strategy is not None else contextlib.nullcontext():
    flow = AutoregressiveRQSFlow(features=3, context=1, hidden=8, num_blocks=2, permutations=[[2, 1, 0]], seed=0)
x, context = data()


def loss_fn(xb, cb):
    nll = -tf.reduce_mean(flow.log_prob(xb, cb))
    return nll, nll


result = train_loop(flow, loss_fn, [x, context], epochs=3, batch_size=64, learning_rate=1e-2,
                    checkpoint_dir=worker_checkpoint_dir(out / f"checkpoints-{strategy_name}"),
                    evaluate=lambda mean_nll: mean_nll, metric_name="nll", seed=0, progress=False,
                    strategy=strategy)
name = f"result-{strategy_name}-{worker_index()}"
np.savez(out / f"{name}.npz", *[v.numpy() for v in flow.trainable_variables])
(out / f"{name}.json").write_text(json.dumps(result.to_dict()))
print(f"worker {worker_index()} ({strategy_name}): loss per epoch {[round(h['loss'], 4) for h in result.history]}")
