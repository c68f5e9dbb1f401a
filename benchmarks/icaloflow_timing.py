"""Generation speed of iCaloFlow DS2/DS3 by the challenge protocol, for the README and the issue's closing note.

Usage: python benchmarks/icaloflow_timing.py [--out icaloflow_timing.json] [--quick] [--only ds2|ds3]

Times the paper-size students (random weights: speed does not depend on them) and the shipped compact artifacts at
batch 100 and 10 000 in float32 (XLA): warm-up, then repetitions, mean ± std ms per shower, excluding model loading and
file I/O (calozoo.evaluation.timing). The published CPU times (MODELS.md, iCaloFlow) are 135 / 78 ms per shower (DS2
student) and 455 / 446 ms (DS3 student) at batch 100 / 10 000; the issue's target is 5x below them.
"""

import argparse
import json

import calozoo as zoo
from calozoo.errors import MissingWeightsError
from calozoo.evaluation.timing import time_generation

PUBLISHED_MS = {"2": {100: 135.0, 10_000: 78.0}, "3": {100: 455.0, 10_000: 446.0}}
# (name, paper size?, batch sizes, repeats)
RUNS = [
    ("icaloflow-ds2-electron-student", True, (100, 10_000), 3),
    ("icaloflow-ds2-electron-student", False, (100, 10_000), 3),
    ("icaloflow-ds3-electron-student", True, (100, 10_000), 2),
    ("icaloflow-ds3-electron-student", False, (100, 10_000), 2),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="icaloflow_timing.json")
    parser.add_argument("--quick", action="store_true", help="batch 100 only, 1 repeat (a smoke run)")
    parser.add_argument("--only", choices=["ds2", "ds3"], default=None, help="time one dataset's models")
    args = parser.parse_args()
    rows, environment = [], None
    for name, paper, batches, repeats in RUNS:
        if args.only and f"-{args.only}-" not in name:
            continue
        if args.quick:
            batches, repeats = (100,), 1
        try:
            model = zoo.create(name, dtype="float32") if paper else zoo.load(name, dtype="float32")
        except MissingWeightsError:
            print(f"{name}: no shipped artifact, skipped")
            continue
        report = time_generation(model, batches, repeats=repeats, warmup=1, progress=False)
        for row in report["results"]:
            published = PUBLISHED_MS[model.dataset][row["batch_size"]]
            row.update(model=name, size="paper" if paper else "shipped", num_params=model.num_params,
                       published_cpu_ms=published, speedup_vs_published=published / row["mean_ms_per_shower"])
            rows.append(row)
            print(f"{name:32s} {row['size']:8s} {model.num_params:>11,d} batch {row['batch_size']:>6}: "
                  f"{row['mean_ms_per_shower']:.4g} ± {row['std_ms_per_shower']:.2g} ms/shower "
                  f"({row['repeats']} repeats; published {published:g}: x{row['speedup_vs_published']:.1f})",
                  flush=True)
        environment = report["environment"]
    with open(args.out, "w") as handle:
        json.dump({"environment": environment, "results": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
