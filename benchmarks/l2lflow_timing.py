"""Generation speed of the convolutional L2LFlows (DS2, DS3) by the challenge protocol, for the README and the
issue's closing note (published ConvL2LFlow DS3: CPU batch 100 371 ms/shower; A100 batch 1000 6.1 ms/shower).

Usage: python benchmarks/l2lflow_timing.py [--out results.json] [--quick] [--paper]

Times the shipped compact artifacts at batch 1 / 100 (10 repetitions after 2 warm-up calls) and 10 000 (3 after 1),
XLA-compiled sampler, float32: mean ± std ms per shower, excluding model loading and file I/O (calozoo.evaluation.timing).
`--paper` adds the paper-size models (45 causal flows, random weights: speed does not depend on them) at
batch 1 and 100 with 3 repetitions, without XLA (compiling 45 flows takes long); `--quick` drops batch 10 000.
"""

import argparse
import json

import calozoo as zoo
from calozoo.errors import MissingWeightsError
from calozoo.evaluation.timing import time_generation

# (name, paper size?, batch sizes, repeats, warm-up calls, jit_compile)
RUNS = [
    ("l2lflow-ds2-electron", False, (1, 100), 10, 2, True),
    ("l2lflow-ds2-electron", False, (10_000,), 3, 1, True),
    ("l2lflow-ds3-electron", False, (1, 100), 10, 2, True),
    ("l2lflow-ds3-electron", False, (10_000,), 3, 1, True),
]
PAPER_RUNS = [
    ("l2lflow-ds3-electron", True, (1, 100), 3, 1, False),
    ("l2lflow-ds2-electron", True, (1, 100), 3, 1, False),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="l2lflow_timing.json")
    parser.add_argument("--quick", action="store_true", help="no batch 10 000 (a smoke run)")
    parser.add_argument("--paper", action="store_true", help="also time the paper-size models")
    args = parser.parse_args()
    rows, environment = [], None
    for name, paper, batches, repeats, warmup, jit in RUNS + (PAPER_RUNS if args.paper else []):
        if args.quick:
            batches = tuple(b for b in batches if b < 10_000)
        if not batches:
            continue
        try:
            model = zoo.create(name, dtype="float32") if paper else zoo.load(name, dtype="float32")
        except MissingWeightsError:
            print(f"{name}: no shipped artifact, skipped")
            continue
        report = time_generation(model, batches, repeats=repeats, warmup=warmup, jit_compile=jit, progress=False)
        for row in report["results"]:
            row.update(model=name, size="paper" if paper else "shipped", num_params=model.num_params,
                       layer_flows=model.config.layer_flows, jit_compile=jit)
            rows.append(row)
            print(f"{name:22s} {row['size']:8s} {model.num_params:>11,d} batch {row['batch_size']:>6}: "
                  f"{row['mean_ms_per_shower']:.4g} ± {row['std_ms_per_shower']:.2g} ms/shower "
                  f"({row['repeats']} repeats)", flush=True)
        environment = report["environment"]
    with open(args.out, "w") as handle:
        json.dump({"environment": environment, "results": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
