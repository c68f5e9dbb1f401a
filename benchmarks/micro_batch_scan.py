"""Chooses a generator's micro-batch from measurement: ms per shower of one large batch cut into slices of each size.

`ShowerGenerator` cuts a large batch into `micro_batch` rows inside the compiled sampler (the activations of a slice
stay in cache). This script times one batch of `--total` showers for each candidate slice size, the candidates
alternating round by round in one process, and writes the medians and the best size per model:

    python benchmarks/micro_batch_scan.py --model icaloflow-ds2-electron-student --paper-size \\
        --total 1000 --micro 100,250,500,1000 --rounds 3 --out benchmarks/micro_batch_scan.json

Only ratios between the candidates of one run mean anything on a shared machine; the load average is recorded.
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

import calozoo as zoo
from calozoo.data.incident_energies import sample_incident_energies
from calozoo.models.base import seed_pair


def compiled_samplers(model, sizes):
    """One XLA-compiled sampler per micro-batch size (the slicing is fixed when a function is traced)."""
    samplers = {}
    for size in sizes:
        model.micro_batch = int(size)
        samplers[size] = tf.function(model._sample_in_slices, jit_compile=model.supports_xla)
    return samplers


def scan(model, total: int, sizes, rounds: int, seed: int = 0) -> dict:
    energies = tf.constant(sample_incident_energies(model.dataset, total, seed), tf.float32)
    samplers = compiled_samplers(model, sizes)
    compile_s = {}
    for size, sample in samplers.items():  # traced and compiled with the attribute set for this size
        model.micro_batch = int(size)
        started = time.perf_counter()
        sample(energies, seed_pair(seed)).numpy()
        compile_s[size] = time.perf_counter() - started
    timings = {size: [] for size in sizes}
    for index in range(rounds):
        for size, sample in samplers.items():
            started = time.perf_counter()
            sample(energies, seed_pair(seed, index + 1)).numpy()
            timings[size].append((time.perf_counter() - started) * 1e3 / total)
    medians = {size: float(np.median(values)) for size, values in timings.items()}
    best = min(medians, key=medians.get)
    return {"ms_per_shower_median": {str(k): round(v, 3) for k, v in medians.items()},
            "ms_per_shower_all": {str(k): [round(v, 3) for v in values] for k, values in timings.items()},
            "first_call_s": {str(k): round(v, 1) for k, v in compile_s.items()},
            "best_micro_batch": int(best),
            "ratio_to_best": {str(k): round(v / medians[best], 3) for k, v in medians.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--paper-size", action="store_true", help="the paper configuration with random weights")
    parser.add_argument("--total", type=int, default=1000)
    parser.add_argument("--micro", default="100,250,500,1000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow threads (default: TensorFlow's)")
    parser.add_argument("--out", type=Path, help="JSON file the row is added to")
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    sizes = [int(s) for s in args.micro.split(",")]
    model = zoo.create(args.model, dtype="float32") if args.paper_size else zoo.load(args.model, dtype="float32")
    load_start = os.getloadavg()
    started = time.perf_counter()
    row = {"model": args.model, "size": "paper" if args.paper_size else "shipped", "num_params": model.num_params,
           "total": args.total, "rounds": args.rounds, "class_micro_batch": type(model).micro_batch,
           **scan(model, args.total, sizes, args.rounds),
           "threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
           "affinity": sorted(os.sched_getaffinity(0)), "cpu": platform.processor() or platform.machine(),
           "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
           "wall_s": round(time.perf_counter() - started, 1),
           "command": "python benchmarks/micro_batch_scan.py " + " ".join(
               f"--{k.replace('_', '-')} {v}" if not isinstance(v, bool) else f"--{k.replace('_', '-')}"
               for k, v in vars(args).items() if v not in (None, False) and k != "out")}
    print(json.dumps(row, indent=1))
    if args.out:
        rows = json.loads(args.out.read_text())["rows"] if args.out.exists() else []
        args.out.write_text(json.dumps({"script": "benchmarks/micro_batch_scan.py", "rows": rows + [row]}, indent=1)
                            + "\n")


if __name__ == "__main__":
    main()
