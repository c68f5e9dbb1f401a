"""Generation speed of CaloPointFlow DS2/DS3 by the challenge protocol, for the README and the issue's closing note.

Usage: python benchmarks/calopointflow_timing.py [--out calopointflow_timing.json] [--quick] [--only ds2|ds3]
                                                  [--paper --geant4 DIR] [--batch-sizes B ...] [--repeats R]

Times the shipped compact artifacts (variant II) at batch 100 and 10 000 in float32, and with `--paper` the paper-size
d{2,3}_II configuration at batch 100 and 10 000 (random weights; speed depends on them only through the number of hits
the conditional flow draws, which follows the frozen preprocessing statistics, so those are first fitted to the GEANT4
showers in --geant4 DIR (ds{2,3}_electrons_g4_train.h5) as training would fit them, and the random flow then
draws realistic hit counts):
warm-up, then repetitions, mean ± std
ms per shower, excluding model loading and file I/O (calozoo.workflow.timing). CaloPointFlow's graph has a data-
dependent number of points, so it runs without XLA whatever `jit_compile` says. The published CPU times
(RESULTS.md, submission 23) are 161.1 / 132.6 ms per shower (DS2) and 308.5 ms (DS3, batch 100).
"""

import argparse
from pathlib import Path

from calozoo.data.files import read_showers
from calozoo.workflow.timing import time_runs

PUBLISHED_MS = {"2": {100: 161.1, 10_000: 132.6}, "3": {100: 308.5}}
# (name, paper size?, batch sizes, repeats)
RUNS = [
    ("calopointflow-ds2-electron", False, (100, 10_000), 3),
    ("calopointflow-ds3-electron", False, (100, 10_000), 2),
    ("calopointflow-ds2-electron", True, (100, 10_000), 2),
    ("calopointflow-ds3-electron", True, (100,), 2),
]


def fitted_to_geant4(directory: Path):
    """`model -> str`: fits a paper-size model's preprocessing statistics to the GEANT4 showers of its dataset in
    `directory` (see the docstring)."""

    def prepare(model) -> str:
        path = directory / f"ds{model.config.dataset}_electrons_g4_train.h5"
        energies, showers = read_showers(path)
        model.adapt(showers, energies)
        return f"statistics fitted to {path.name} ({len(energies)} showers)"

    return prepare


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
    parser.add_argument("--geant4", type=Path, default=None,
                        help="with --paper: the folder of ds2/ds3_electrons_g4_train.h5 (fits the statistics)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="instead of each run's")
    parser.add_argument("--repeats", type=int, default=None, help="instead of each run's")
    args = parser.parse_args()
    if args.paper and args.geant4 is None:
        parser.error("--paper needs --geant4 DIR (the GEANT4 showers the paper-size statistics are fitted to)")
    fitted = fitted_to_geant4(args.geant4) if args.paper else None
    time_runs(args.out, [dict(name=name, paper_size=paper, warmup=1, prepare=fitted if paper else None,
                              batch_sizes=(100,) if args.quick else tuple(args.batch_sizes or batches),
                              repeats=1 if args.quick else (args.repeats or repeats))
                         for name, paper, batches, repeats in RUNS
                         if (not args.only or f"-{args.only}-" in name) and (args.paper or not paper)],
              annotate=compared_with_published)

if __name__ == "__main__":
    main()
