"""Latency of an exported SavedModel (TF1 session, as TF Serving runs it, and `tf.saved_model.load`) vs in process.

Usage: python benchmarks/export_latency.py NAME [NAME ...] [--batches 1,10000] [--repetitions 10] [--json PATH]
(NAMEs with an artifact, see CALOZOO_ARTIFACTS). Timing convention of the CaloChallenge: after one warm-up call
(which also compiles), mean +- std over the repetitions, excluding loading. The ways of generating are timed in
turn within each repetition, so a load change on the machine hits all of them alike; `ratio` is each way's mean
over the in-process mean.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

import calozoo as zoo
from calozoo.export import export_model
from calozoo.export.validation import SessionRunner

IN_PROCESS = "in-process model.generate"


def elapsed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def ways_to_generate(model, path, runner, batch):
    """{label: zero-argument call} for one batch size; every call returns the showers as numpy."""
    energies = np.full((batch, 1), 65536.0, np.float32)
    seed = np.array([1, 0], np.int64)
    loaded = tf.saved_model.load(str(path)).signatures["generate_seeded"]
    return {
        "TF1 session serving_default": lambda: runner.run("serving_default", {"incident_energies": energies}),
        "TF1 session generate_seeded": lambda: runner.run("generate_seeded",
                                                          {"incident_energies": energies, "seed": seed}),
        "tf.saved_model.load generate_seeded": lambda: loaded(incident_energies=tf.constant(energies),
                                                              seed=tf.constant(seed))["showers"].numpy(),
        IN_PROCESS: lambda: model.generate(energies, seed=1, batch_size=batch),
    }


def time_alternating(ways: dict, repetitions: int) -> dict:
    """Warm-up (and compile) each way once, then time them in turn `repetitions` times."""
    first = {label: elapsed(fn) for label, fn in ways.items()}
    times = {label: [] for label in ways}
    for _ in range(repetitions):
        for label, fn in ways.items():
            times[label].append(elapsed(fn))
    reference = statistics.mean(times[IN_PROCESS])
    return {label: {"mean_ms": 1e3 * statistics.mean(t), "std_ms": 1e3 * statistics.stdev(t),
                    "first_call_s": first[label], "ratio": statistics.mean(t) / reference}
            for label, t in times.items()}


def benchmark(name, dtype, batches, repetitions) -> dict:
    model = zoo.load(name, dtype=dtype)
    base = tempfile.mkdtemp()
    started = time.perf_counter()
    path = export_model(model, base, name)
    result = {"export_s": time.perf_counter() - started,
              "size": subprocess.run(["du", "-sh", str(path)], capture_output=True, text=True).stdout.split()[0]}
    result["tf.saved_model.load_s"] = elapsed(lambda: tf.saved_model.load(str(path)))
    started = time.perf_counter()
    runner = SessionRunner(path)
    result["tf1_session_load_s"] = time.perf_counter() - started
    for batch in batches:
        timings = time_alternating(ways_to_generate(model, path, runner, batch), repetitions)
        result[f"batch {batch}"] = timings
        for label, t in timings.items():
            print(f"{name} batch {batch:6d}  {label:36s} {t['mean_ms']:10.2f} +- {t['std_ms']:8.2f} ms/call "
                  f"= {t['mean_ms'] / batch:.4f} ms/shower  x{t['ratio']:.2f}  (first call {t['first_call_s']:.1f} s)",
                  flush=True)
    runner.close()
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="+")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batches", default="1,10000")
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--json", type=Path, help="merge the results into this JSON file, under a --label key")
    parser.add_argument("--label", default="run")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    run = {"command": "python benchmarks/export_latency.py " + " ".join(sys.argv[1:]),
           "load_average_before": os.getloadavg(), "tensorflow": tf.__version__, "dtype": args.dtype,
           "repetitions": args.repetitions, "models": {}}
    for name in args.names:
        run["models"][name] = benchmark(name, args.dtype, batches, args.repetitions)
    run["load_average_after"] = os.getloadavg()
    if args.json:
        merged = json.loads(args.json.read_text()) if args.json.exists() else {}
        merged[args.label] = run
        args.json.write_text(json.dumps(merged, indent=1) + "\n")


if __name__ == "__main__":
    main()
