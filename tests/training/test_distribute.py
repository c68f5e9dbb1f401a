"""Distributed training: strategy names, one-device MirroredStrategy, and two real worker processes on 127.0.0.1."""

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from calozoo.bijectors.autoregressive_flow import AutoregressiveRQSFlow
from calozoo.training.distribute import make_strategy, worker_checkpoint_dir
from calozoo.training.trainer import train_loop

WORKER = Path(__file__).with_name("multiworker_worker.py")
REPOSITORY = Path(__file__).resolve().parents[2]


def test_strategy_names(monkeypatch):
    assert make_strategy("none") is None
    with pytest.raises(ValueError, match="Unknown strategy 'tpu'; choose one of none, mirrored, multiworker"):
        make_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="'multiworker' needs the TF_CONFIG environment variable"):
        make_strategy("multiworker")


def test_worker_checkpoint_dirs_differ(monkeypatch, tmp_path):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    assert worker_checkpoint_dir(tmp_path) == tmp_path / "worker-1"
    monkeypatch.delenv("TF_CONFIG")
    assert worker_checkpoint_dir(tmp_path) == tmp_path


def _train_tiny_flow(strategy, checkpoint_dir):
    rng = np.random.default_rng(0)
    context = rng.uniform(-1.0, 1.0, (128, 1))
    x = 2.0 * context + 0.3 * rng.normal(size=(128, 3))
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        flow = AutoregressiveRQSFlow(features=3, context=1, hidden=8, num_blocks=2, permutations=[[2, 1, 0]], seed=0)

    def loss_fn(xb, cb):
        nll = -tf.reduce_mean(flow.log_prob(xb, cb))
        return nll, nll

    result = train_loop(flow, loss_fn, [x, context], epochs=2, batch_size=32, learning_rate=1e-2,
                        checkpoint_dir=checkpoint_dir, evaluate=lambda m: m, metric_name="nll", progress=False,
                        strategy=strategy)
    return [v.numpy() for v in flow.trainable_variables], result


def test_mirrored_strategy_on_one_device_trains_like_no_strategy(tmp_path):
    plain, plain_result = _train_tiny_flow(None, tmp_path / "plain")
    mirrored, mirrored_result = _train_tiny_flow(make_strategy("mirrored"), tmp_path / "mirrored")
    assert mirrored_result.history[-1]["loss"] < mirrored_result.history[0]["loss"]
    for a, b in zip(plain, mirrored):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start(out, strategy, tf_config=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, str(WORKER), str(out), strategy], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_workers_end_with_identical_weights_equal_to_one_process(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = [_start(tmp_path, "multiworker",
                        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
                 for i in range(2)]
    processes.append(_start(tmp_path, "none"))
    logs = []
    try:
        for process in processes:
            logs.append(process.communicate(timeout=300)[0])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log[-3000:]
    first, second, single = (np.load(tmp_path / f"result-{n}.npz") for n in
                             ("multiworker-0", "multiworker-1", "none-0"))
    assert len(first.files) == len(single.files) > 0
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key])
        # Each worker takes the gradient of half of every batch; their sum is the whole batch's gradient.
        np.testing.assert_allclose(first[key], single[key], rtol=1e-7, atol=1e-10)
    history = json.loads((tmp_path / "result-multiworker-0.json").read_text())["history"]
    assert history[-1]["loss"] < history[0]["loss"]
