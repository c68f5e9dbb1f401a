"""Generation speed of CaloMan DS1 by the challenge protocol, for the README and the issue's closing note.

Usage: python benchmarks/caloman_ds1.py [--out results.json] [--quick]

Times the paper-size models (random weights: speed does not depend on them; the registered configurations,
17.1 M / 16.0 M generation parameters) and the shipped compact artifacts at batch 1 / 100 / 10 000 in float32:
warm-up, then repetitions, mean ± std ms per shower, excluding model loading and file I/O
(calozoo.workflow.timing). The published CPU times of CaloMan photons are 186.5 / 3.196 / 1.462 ms per shower,
pions 605.5 / 12.1 / 7.383 (../shared/calochallenge/RESULTS.md).
"""

import argparse

from calozoo.workflow.timing import time_runs

# (name, paper size?)
RUNS = [("caloman-ds1-photon", True), ("caloman-ds1-pion", True), ("caloman-ds1-photon", False),
        ("caloman-ds1-pion", False)]
PUBLISHED_CPU_MS = {"caloman-ds1-photon": {1: 186.5, 100: 3.196, 10_000: 1.462},
                    "caloman-ds1-pion": {1: 605.5, 100: 12.1, 10_000: 7.383}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="caloman_ds1_timing.json")
    parser.add_argument("--quick", action="store_true", help="3 repeats and no batch 10 000 (a smoke run)")
    args = parser.parse_args()
    batches, repeats = ((1, 100), 3) if args.quick else ((1, 100, 10_000), 10)
    time_runs(args.out, [dict(name=name, paper_size=paper, batch_sizes=batches, repeats=repeats, warmup=2)
                         for name, paper in RUNS],
              annotate=lambda row: {"published_cpu_ms": PUBLISHED_CPU_MS[row["model"]][row["batch_size"]]})

if __name__ == "__main__":
    main()
