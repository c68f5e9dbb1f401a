"""What mixed precision (the MADE products in bfloat16, `--train-set precision=mixed_bfloat16`) changes, measured.

1. Density: the log-density of GEANT4 showers under shipped models with the MADE products in bfloat16 against the
   weights' own dtype (same weights, the deterministic `log_prob_graph`): the difference in nats per shower.
2. Speed: one XLA-compiled training step (negative log-likelihood, gradients, Adam) of a flow at paper size, float32
   against mixed bfloat16, alternating in one process (ratios only: the machine is shared).

    python benchmarks/mixed_precision.py --showers /work/shared/geant4/ds2_electrons_g4_train.h5 \\
        --out benchmarks/mixed_precision.json

On a GPU with bfloat16 units the products are where mixed precision pays; this CPU (TensorFlow's XLA CPU backend)
runs bfloat16 products slower than float32, which the speed rows show plainly.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import h5py
import numpy as np
import tensorflow as tf
import tf_keras

import calozoo as zoo
from calozoo.bijectors.autoregressive_flow import AutoregressiveRQSFlow
from calozoo.training.precision import set_network_precision

DENSITY_MODELS = ("icaloflow-ds2-electron-teacher",
                  "l2lflow-ds2-electron")
# name: (features, context, hidden, MADE hidden layers, blocks, batch)
STEP_SIZES = {"icaloflow-ds2 Flow-3 teacher (paper)": (144, 191, 256, 2, 8, 1000),
              "caloflow-ds1-photon Flow-II teacher (paper)": (368, 6, 736, 1, 8, 200)}


def density_rows(path: str, n: int) -> list[dict]:
    with h5py.File(path, "r") as f:
        showers, energies = f["showers"][:n].astype(np.float32), f["incident_energies"][:n].astype(np.float32)
    rows = []
    for name in DENSITY_MODELS:
        model = zoo.load(name)
        full = model.log_prob_graph(showers, energies.reshape(-1, 1)).numpy()
        count = set_network_precision(model, "mixed_bfloat16")
        mixed = model.log_prob_graph(showers, energies.reshape(-1, 1)).numpy()
        set_network_precision(model, "default")
        difference = mixed - full
        rows.append({"model": name, "showers": n, "mades_in_bfloat16": count,
                     "dtype": tf.as_dtype(getattr(model, "dtype", tf.float32)).name,
                     "log_prob_mean": round(float(full.mean()), 2), "log_prob_std": round(float(full.std()), 2),
                     "difference_mean_nats": round(float(difference.mean()), 4),
                     "difference_abs_mean_nats": round(float(np.abs(difference).mean()), 4),
                     "difference_abs_max_nats": round(float(np.abs(difference).max()), 4)})
        print(json.dumps(rows[-1]))
    return rows


def step_function(flow, optimizer):
    @tf.function(jit_compile=True)
    def step(x, c):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(flow.log_prob(x, c))
        gradients = tape.gradient(loss, flow.trainable_variables)
        optimizer.apply_gradients(zip(gradients, flow.trainable_variables))
        return loss
    return step


def step_rows(rounds: int, steps: int) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for name, (features, context, hidden, made_blocks, blocks, batch) in STEP_SIZES.items():
        x = tf.constant(rng.normal(size=(batch, features)), tf.float32)
        c = tf.constant(rng.normal(size=(batch, context)), tf.float32)
        steps_by_precision = {}
        for precision in ("default", "mixed_bfloat16"):
            flow = AutoregressiveRQSFlow(features, context, hidden, blocks, made_hidden_blocks=made_blocks, seed=0,
                                         dtype=tf.float32, permutations=[rng.permutation(features)
                                                                         for _ in range(blocks - 1)])
            set_network_precision(flow, precision)
            step = step_function(flow, tf_keras.optimizers.Adam(1e-4))
            step(x, c)  # compile
            steps_by_precision[precision] = step
        times = {p: [] for p in steps_by_precision}
        for _ in range(rounds):
            for precision, step in steps_by_precision.items():
                started = time.perf_counter()
                for _ in range(steps):
                    loss = step(x, c)
                loss.numpy()
                times[precision].append((time.perf_counter() - started) / steps)
        medians = {p: float(np.median(t)) for p, t in times.items()}
        rows.append({"flow": name, "batch": batch, "rounds": rounds, "steps_per_round": steps,
                     "showers_per_s": {p: round(batch / m, 1) for p, m in medians.items()},
                     "mixed_over_float32_time": round(medians["mixed_bfloat16"] / medians["default"], 3),
                     "loadavg": [round(v, 2) for v in os.getloadavg()]})
        print(json.dumps(rows[-1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--showers", required=True, help="GEANT4 DS2 showers (CaloChallenge HDF5)")
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = {"script": "benchmarks/mixed_precision.py", "density": density_rows(args.showers, args.n),
              "training_step": step_rows(args.rounds, args.steps), "tensorflow": tf.__version__,
              "affinity": sorted(os.sched_getaffinity(0))}
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
