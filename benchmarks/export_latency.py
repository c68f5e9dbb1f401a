"""Export size, load time and latency of a SavedModel in a TF1 session (as TF Serving runs it) vs `model.generate`.

Usage: python benchmarks/export_latency.py NAME [--dtype float32]   (NAME with an artifact, see CALOZOO_ARTIFACTS)
Timing convention of the CaloChallenge: after warm-up, 10 repetitions, mean +- std, excluding loading.
"""

import argparse
import statistics
import subprocess
import tempfile
import time

import numpy as np
import tensorflow as tf

import calozoo as zoo
from calozoo.export import export_model
from calozoo.export.validation import SessionRunner


def timed(fn, repetitions=10):
    fn()  # warm-up
    times = []
    for _ in range(repetitions):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.mean(times), statistics.stdev(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batches", default="1,10000")
    args = parser.parse_args()
    model = zoo.load(args.name, dtype=args.dtype)
    base = tempfile.mkdtemp()
    started = time.perf_counter()
    path = export_model(model, base, args.name)
    print(f"export: {time.perf_counter() - started:.1f} s, size "
          f"{subprocess.run(['du', '-sh', str(path)], capture_output=True, text=True).stdout.split()[0]}")
    started = time.perf_counter()
    tf.saved_model.load(str(path))
    print(f"tf.saved_model.load: {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    runner = SessionRunner(path)
    print(f"TF1 session load: {time.perf_counter() - started:.2f} s")
    for batch in [int(b) for b in args.batches.split(",")]:
        energies = np.full((batch, 1), 65536.0, np.float32)
        seed = np.array([1, 2], np.int64)
        for label, fn in [
            ("TF1 session serving_default", lambda: runner.run("serving_default", {"incident_energies": energies})),
            ("TF1 session generate_seeded", lambda: runner.run("generate_seeded",
                                                               {"incident_energies": energies, "seed": seed})),
            ("in-process model.generate (XLA)", lambda: model.generate(energies, seed=1, batch_size=batch)),
        ]:
            mean, std = timed(fn)
            print(f"batch {batch:6d}  {label:34s} {1e3 * mean:10.2f} +- {1e3 * std:8.2f} ms/call "
                  f"= {1e3 * mean / batch:.4f} ms/shower")


if __name__ == "__main__":
    main()
