"""Generation speed of CaloFlow DS1 by the challenge protocol, for the README and the issue's closing note.

Usage: python benchmarks/caloflow_ds1.py [--out results.json] [--quick]

Times the paper-size student (random weights: speed does not depend on them) and teacher and the shipped compact
artifacts at batch 1 / 100 / 10 000 in float32: warm-up, then repetitions, mean ± std ms per shower, excluding
model loading and file I/O (calozoo.workflow.timing). The teacher samples sequentially over every voxel of every
block, so its large batches get fewer repetitions (said in the output).
"""

import argparse

from calozoo.workflow.timing import time_runs

# (name, paper size?, batch sizes, repeats)
RUNS = [
    ("caloflow-ds1-photon-student", True, (1, 100, 10_000), 10),
    ("caloflow-ds1-photon-teacher", True, (1, 100), 3),
    ("caloflow-ds1-photon-student", False, (1, 100, 10_000), 10),
    ("caloflow-ds1-photon-teacher", False, (1, 100, 10_000), 3),
    ("caloflow-ds1-pion-student", True, (1, 100, 10_000), 10),
    ("caloflow-ds1-pion-student", False, (1, 100, 10_000), 10),
    ("caloflow-ds1-pion-teacher", False, (1, 100), 3),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="caloflow_ds1_timing.json")
    parser.add_argument("--quick", action="store_true", help="3 repeats and no batch 10 000 (a smoke run)")
    args = parser.parse_args()
    time_runs(args.out, [dict(name=name, paper_size=paper, warmup=2,
                              batch_sizes=tuple(b for b in batches if b < 10_000) if args.quick else batches,
                              repeats=3 if args.quick else repeats)
                         for name, paper, batches, repeats in RUNS])

if __name__ == "__main__":
    main()
