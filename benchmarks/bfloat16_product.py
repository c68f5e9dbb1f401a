"""The paper-size student's largest product in bfloat16 and float16 against float32, with and without XLA.

One masked-MADE output layer of the CaloFlow DS1 student at paper size (H 736 -> 368 x 23 outputs), timed as
x @ W for batches of 1, 100 and 2 000 (best of three rounds), to see whether storing the weights in 16 bits would
speed up generation on this CPU (the issue's bfloat16 stretch goal):

    taskset -c 0 python benchmarks/bfloat16_product.py --out benchmarks/bfloat16_product.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

HIDDEN, OUTPUTS = 736, 368 * 23


def best_ms(function, h, calls: int) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            function(h).numpy()
        times.append((time.perf_counter() - started) / calls * 1e3)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((HIDDEN, OUTPUTS)).astype(np.float32)
    rows = []
    for dtype in (tf.float32, tf.bfloat16, tf.float16):
        kernel = tf.Variable(tf.cast(weights, dtype))
        for jit in (False, True):
            product = tf.function(lambda h, k=kernel: tf.matmul(h, k), jit_compile=jit)
            for batch in (1, 100, 2000):
                h = tf.cast(rng.standard_normal((batch, HIDDEN)), dtype)
                product(h)
                calls = 300 if batch == 1 else max(3, 2000 // batch)
                rows.append({"dtype": dtype.name, "xla": jit, "batch": batch,
                             "ms_per_product": round(best_ms(product, h, calls), 3)})
                print(rows[-1])
    report = {"script": "benchmarks/bfloat16_product.py", "shape": [HIDDEN, OUTPUTS], "tensorflow": tf.__version__,
              "affinity": sorted(os.sched_getaffinity(0)), "loadavg_end": [round(v, 2) for v in os.getloadavg()],
              "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
