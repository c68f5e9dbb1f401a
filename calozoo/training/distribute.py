"""tf.distribute strategies for `train_loop`: one device, all local devices, or several workers (TF_CONFIG).

Build the model inside `strategy.scope()` so that its variables are mirrored, then pass the strategy to
`train_loop`:

    >>> strategy = make_strategy("mirrored")                       # doctest: +SKIP
    >>> with strategy.scope():                                     # doctest: +SKIP
    ...     flow = AutoregressiveRQSFlow(features=3, context=1, hidden=8, num_blocks=2, permutations=[[2, 1, 0]])
    >>> train_loop(flow, loss_fn, arrays, ..., strategy=strategy)  # doctest: +SKIP

For "multiworker" every process sets TF_CONFIG (`{"cluster": {"worker": ["host:port", ...]}, "task": {"type":
"worker", "index": i}}`) and calls `make_strategy` before any other TensorFlow op; all workers run the same
script on the same data, and each computes the gradient of its slice of every batch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import tensorflow as tf

__all__ = ["STRATEGY_NAMES", "make_strategy", "worker_index", "worker_checkpoint_dir"]

STRATEGY_NAMES = ("none", "mirrored", "multiworker")


def make_strategy(name: str = "none") -> tf.distribute.Strategy | None:
    """The strategy called `name`: "none" (None: TensorFlow's default, one device), "mirrored" (every local
    device, synchronous) or "multiworker" (synchronous over the workers of TF_CONFIG, ring all-reduce).
    """
    if name == "none":
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("Strategy 'multiworker' needs the TF_CONFIG environment variable (cluster and task) in "
                             "every worker process; use 'mirrored' for one machine.")
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    raise ValueError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGY_NAMES)}.")


def worker_index() -> int:
    """This process's worker index in TF_CONFIG (0, the chief, without TF_CONFIG)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    return int(config.get("task", {}).get("index", 0))


def worker_checkpoint_dir(checkpoint_dir: str | Path) -> Path:
    """`checkpoint_dir` for worker 0, `<checkpoint_dir>/worker-<i>` for the others, so workers never write
    the same files (their weights are identical; worker 0's copy is the one to keep)."""
    index = worker_index()
    return Path(checkpoint_dir) if index == 0 else Path(checkpoint_dir) / f"worker-{index}"
