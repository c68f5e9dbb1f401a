"""Paper-size CaloGAN e+ and DS1 photon students (float32, XLA sampler), timed alternately in one process
(issue 18 part 4).

Usage: python benchmarks/calogan_vs_ds1_student.py BATCH REPETITIONS
"""
import statistics
import sys
import time

import numpy as np
import tensorflow as tf

import calozoo
from calozoo.models.base import seed_pair

batch = int(sys.argv[1])
reps = int(sys.argv[2])
models = {n: calozoo.create(n, dtype="float32")
          for n in ["caloflow-calogan-eplus-student", "caloflow-ds1-photon-student"]}
samplers = {n: m.sampler() for n, m in models.items()}
e = tf.constant(np.full((batch, 1), 65536.0, np.float32))
for n, s in samplers.items():
    t = time.perf_counter()
    s(e, seed_pair(0)).numpy()
    print(n, "first call %.1f s" % (time.perf_counter() - t), flush=True)
times = {n: [] for n in models}
for r in range(reps):
    for n, s in samplers.items():
        t = time.perf_counter()
        s(e, seed_pair(r + 1)).numpy()
        times[n].append(time.perf_counter() - t)
for n, ts in times.items():
    print(n, "batch", batch, "%.3f +- %.3f ms/shower"
          % (1e3 * statistics.mean(ts) / batch, 1e3 * statistics.stdev(ts) / batch), flush=True)
