"""Generation speed of iCaloFlow DS2/DS3 by the challenge protocol, for the README and the issue's closing note.

Usage: python benchmarks/icaloflow_timing.py [--out icaloflow_timing.json] [--quick] [--only ds2|ds3]

Times the paper-size students (random weights: speed does not depend on them) and the shipped compact artifacts at
batch 100 and 10 000 in float32 (XLA): warm-up, then repetitions, mean ± std ms per shower, excluding model loading and
file I/O (calozoo.workflow.timing). The published CPU times (MODELS.md, iCaloFlow) are 135 / 78 ms per shower (DS2
student) and 455 / 446 ms (DS3 student) at batch 100 / 10 000; the issue's target is 5x below them. The paper-size DS3
student at batch 10 000 takes about 20 minutes per call on 2 cores.
"""

import argparse

from calozoo.workflow.timing import time_runs

PUBLISHED_MS = {"2": {100: 135.0, 10_000: 78.0}, "3": {100: 455.0, 10_000: 446.0}}
# (name, paper size?, batch sizes, repeats)
RUNS = [
    ("icaloflow-ds2-electron-student", True, (100, 10_000), 3),
    ("icaloflow-ds2-electron-student", False, (100, 10_000), 3),
    ("icaloflow-ds3-electron-student", True, (100, 10_000), 2),
    ("icaloflow-ds3-electron-student", False, (100, 10_000), 2),
]


def compared_with_published(row: dict) -> dict:
    published = PUBLISHED_MS[row["model"].split("-")[1][2:]][row["batch_size"]]
    return {"published_cpu_ms": published, "speedup_vs_published": published / row["mean_ms_per_shower"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="icaloflow_timing.json")
    parser.add_argument("--quick", action="store_true", help="batch 100 only, 1 repeat (a smoke run)")
    parser.add_argument("--only", choices=["ds2", "ds3"], default=None, help="time one dataset's models")
    args = parser.parse_args()
    time_runs(args.out, [dict(name=name, paper_size=paper, batch_sizes=(100,) if args.quick else batches,
                              repeats=1 if args.quick else repeats, warmup=1)
                         for name, paper, batches, repeats in RUNS if not args.only or f"-{args.only}-" in name],
              annotate=compared_with_published)


if __name__ == "__main__":
    main()
