"""Generation speed of CaloPointFlow DS2/DS3 by the challenge protocol, for the README and the issue's closing note.

Usage: python benchmarks/calopointflow_timing.py [--out calopointflow_timing.json] [--quick] [--only ds2|ds3]
                                                  [--paper] [--batch-sizes B ...] [--repeats R]

Times the shipped compact artifacts (variant II) at batch 100 and 10 000 in float32, and with `--paper` the paper-size
d{2,3}_II configuration (random weights: speed does not depend on them, except through the number of hits the
conditional flow draws, which a random flow does not match to data) at batch 100: warm-up, then repetitions, mean ± std
ms per shower, excluding model loading and file I/O (calozoo.evaluation.timing). CaloPointFlow's graph has a data-
dependent number of points, so it runs without XLA whatever `jit_compile` says. The published CPU times
(RESULTS.md, submission 23) are 161.1 / 132.6 ms per shower (DS2) and 308.5 ms (DS3, batch 100).
"""

import argparse

from calozoo.evaluation.timing import time_registered, write_timing_json

PUBLISHED_MS = {"2": {100: 161.1, 10_000: 132.6}, "3": {100: 308.5}}
# (name, paper size?, batch sizes, repeats)
RUNS = [
    ("calopointflow-ds2-electron", False, (100, 10_000), 3),
    ("calopointflow-ds3-electron", False, (100, 10_000), 2),
    ("calopointflow-ds2-electron", True, (100,), 2),
    ("calopointflow-ds3-electron", True, (100,), 2),
]


def compared_with_published(row: dict) -> dict:
    published = PUBLISHED_MS[row["model"].split("-")[1][2:]].get(row["batch_size"])
    if published is None:
        return {}
    return {"published_cpu_ms": published, "speedup_vs_published": published / row["mean_ms_per_shower"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="calopointflow_timing.json")
    parser.add_argument("--quick", action="store_true", help="batch 100 only, 1 repeat (a smoke run)")
    parser.add_argument("--only", choices=["ds2", "ds3"], default=None, help="time one dataset's models")
    parser.add_argument("--paper", action="store_true", help="also time the paper-size configurations")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="instead of each run's")
    parser.add_argument("--repeats", type=int, default=None, help="instead of each run's")
    args = parser.parse_args()
    rows, environment = [], None
    for name, paper, batches, repeats in RUNS:
        if (args.only and f"-{args.only}-" not in name) or (paper and not args.paper):
            continue
        batches = (100,) if args.quick else tuple(args.batch_sizes or batches)
        repeats = 1 if args.quick else (args.repeats or repeats)
        timed = time_registered(name, paper_size=paper, batch_sizes=batches, repeats=repeats, warmup=1,
                                annotate=compared_with_published)
        if timed:
            rows += timed[0]
            environment = timed[1]
    write_timing_json(args.out, environment, rows)


if __name__ == "__main__":
    main()
