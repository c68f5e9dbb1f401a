"""Generation speed of the convolutional L2LFlows (DS2, DS3) by the challenge protocol, for the README and the
issue's closing note (published ConvL2LFlow DS3: CPU batch 100 371 ms/shower; A100 batch 1000 6.1 ms/shower).

Usage: python benchmarks/l2lflow_timing.py [--out results.json] [--quick] [--paper]

Times the shipped compact artifacts at batch 1 / 100 (10 repetitions after 2 warm-up calls) and 10 000 (3 after 1),
XLA-compiled sampler, float32: mean ± std ms per shower, excluding model loading and file I/O (calozoo.workflow.timing).
`--paper` adds the paper-size models (45 causal flows, random weights: speed does not depend on them) at
batch 1 and 100 with 3 repetitions, without XLA (compiling 45 flows takes long); `--quick` drops batch 10 000.
"""

import argparse

from calozoo.workflow.timing import time_runs

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


def layer_flows(row: dict) -> dict:
    """The shipped models have one shared layer flow, the paper configurations 45 causal ones."""
    return {"layer_flows": "causal" if row["size"] == "paper" else "shared"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="l2lflow_timing.json")
    parser.add_argument("--quick", action="store_true", help="no batch 10 000 (a smoke run)")
    parser.add_argument("--paper", action="store_true", help="also time the paper-size models")
    args = parser.parse_args()
    runs = [dict(name=name, paper_size=paper, batch_sizes=tuple(b for b in batches if not args.quick or b < 10_000),
                 repeats=repeats, warmup=warmup, jit_compile=jit)
            for name, paper, batches, repeats, warmup, jit in RUNS + (PAPER_RUNS if args.paper else [])]
    time_runs(args.out, [run for run in runs if run["batch_sizes"]], annotate=layer_flows)


if __name__ == "__main__":
    main()
