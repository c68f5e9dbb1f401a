"""MADE evaluated in column blocks against one dense product per layer: the measurement behind `block_groups`.

For each MADE size (the flows of the paper and the shipped compact models) and batch size, times one XLA-compiled
MADE pass (the student's sampling direction, the teacher's density) with `groups=1` (one block per layer: only the
rows that feed nothing are skipped) and with more column blocks, the candidates alternating round by round in one
process, and writes the medians and the ratios:

    python benchmarks/made_blocks.py --out benchmarks/made_blocks.json
    python benchmarks/made_blocks.py --quick            # two sizes, two batch sizes, two rounds

Only the ratios inside one run mean anything on a shared machine; the load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from calozoo.bijectors.made import MADE, block_groups

# name: (features, context, hidden, hidden layers); 23 spline parameters per feature (8 bins) everywhere
SIZES = {
    "caloflow-ds1-photon student/teacher (paper)": (368, 6, 736, 1),
    "caloflow-calogan student/teacher (paper)": (504, 4, 504, 1),
    "icaloflow-ds2 Flow-3 student (paper)": (144, 191, 384, 2),
    "icaloflow-ds3 Flow-3 teacher/student (paper)": (900, 947, 256, 1),
    "caloflow-ds1-photon (shipped compact)": (368, 6, 48, 1),
    "icaloflow-ds2 Flow-3 (shipped compact)": (144, 191, 64, 2),
}
QUICK = ("caloflow-ds1-photon student/teacher (paper)", "icaloflow-ds2 Flow-3 (shipped compact)")
PARAMS_PER_FEATURE = 23


def compiled_pass(made):
    return tf.function(lambda x, c: made(x, c), jit_compile=True)


def time_call(function, x, c, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        function(x, c).numpy()
    return (time.perf_counter() - started) / calls * 1e3


def measure(name, size, groups_list, batches, rounds) -> list[dict]:
    features, context, hidden, layers = size
    mades = {g: MADE(features, context, hidden, PARAMS_PER_FEATURE, num_blocks=layers, seed=0, dtype=tf.float32,
                     groups=g) for g in groups_list}
    functions = {g: compiled_pass(m) for g, m in mades.items()}
    rng = np.random.default_rng(0)
    rows = []
    for batch in batches:
        x = tf.constant(rng.normal(size=(batch, features)), tf.float32)
        c = tf.constant(rng.normal(size=(batch, context)), tf.float32)
        reference = functions[groups_list[0]](x, c).numpy()
        for g, function in functions.items():  # compile, and check that the blocks compute the same numbers
            np.testing.assert_allclose(function(x, c).numpy(), reference, rtol=1e-3, atol=1e-4)
        calls = max(1, min(50, 2000 // batch))
        times = {g: [] for g in functions}
        for _ in range(rounds):
            for g, function in functions.items():
                times[g].append(time_call(function, x, c, calls))
        medians = {g: float(np.median(t)) for g, t in times.items()}
        multiplied = {g: sum(int(np.prod(b.shape)) for layer in [m.input_layer, *m.hidden_layers, m.output_layer]
                             for b in layer.blocks) for g, m in mades.items()}
        rows.append({"made": name, "features": features, "context": context, "hidden": hidden,
                     "hidden_layers": layers, "batch": batch, "calls_per_round": calls, "rounds": rounds,
                     "ms_per_pass_median": {str(g): round(v, 4) for g, v in medians.items()},
                     "time_ratio_to_one_block": {str(g): round(v / medians[1], 3) for g, v in medians.items()},
                     "kernel_entries_multiplied": {str(g): v for g, v in multiplied.items()},
                     "block_groups_rule": block_groups(features, hidden),
                     "loadavg": [round(v, 2) for v in os.getloadavg()]})
        print(json.dumps(rows[-1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default="1,4,8,16")
    parser.add_argument("--batches", default="1,100,1000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    groups = [int(g) for g in args.groups.split(",")]
    if groups[0] != 1:
        groups.insert(0, 1)
    batches = [1, 100] if args.quick else [int(b) for b in args.batches.split(",")]
    rounds = 2 if args.quick else args.rounds
    started = time.perf_counter()
    rows = [row for name in (QUICK if args.quick else SIZES) for row in measure(name, SIZES[name], groups, batches,
                                                                                 rounds)]
    report = {"script": "benchmarks/made_blocks.py", "dtype": "float32", "xla": True,
              "threads": os.cpu_count(), "affinity": sorted(os.sched_getaffinity(0)),
              "cpu": platform.processor() or platform.machine(), "tensorflow": tf.__version__,
              "wall_s": round(time.perf_counter() - started, 1), "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
