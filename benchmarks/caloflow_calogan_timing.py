"""Generation speed of paper-size CaloFlow v1 (teacher) and v2 (student) on the CaloGAN detector, next to the seed's
GPU table (CALOGAN.md section 4).

Usage: python benchmarks/caloflow_calogan_timing.py [--out caloflow_calogan_timing.json] [--quick]

Times the paper-size e+ teacher (H 378) and student (H 504), randomly initialised (speed does not depend on the
weights), in float32 at batch 10 / 100 / 1 000 / 10 000 by the challenge protocol (calozoo.workflow.timing: warm-up,
then repetitions, mean ± std ms per shower, no model loading or file I/O). The teacher samples sequentially over all
504 voxels of each of its 8 blocks, so it gets fewer repetitions. The three particles share one architecture, so one
particle is timed.
"""

import argparse

from calozoo.workflow.timing import time_runs

BATCHES = (10, 100, 1_000, 10_000)
# (role, repeats, warm-up) per batch size; the seed's TITAN V numbers, ms per shower.
RUNS = {"student": ({10: 10, 100: 10, 1_000: 5, 10_000: 3}, 2),
        "teacher": ({10: 3, 100: 2, 1_000: 1, 10_000: 1}, 1)}
SEED_GPU_MS = {"teacher": {10: 835.0, 100: 96.1, 1_000: 41.4, 10_000: 36.2},
               "student": {10: 5.81, 100: 0.60, 1_000: 0.12, 10_000: 0.08}}


def next_to_seed(row: dict) -> dict:
    """The seed's GPU time for the same role and batch size."""
    return {"seed_gpu_ms_per_shower": SEED_GPU_MS[row["model"].rsplit("-", 1)[1]][row["batch_size"]]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="caloflow_calogan_timing.json")
    parser.add_argument("--quick", action="store_true", help="batches 10 and 100, 2 repeats (a smoke run)")
    parser.add_argument("--roles", default="student,teacher", help="comma list of student, teacher")
    parser.add_argument("--batches", default=",".join(str(b) for b in BATCHES),
                        help="comma list of batch sizes among 10,100,1000,10000")
    args = parser.parse_args()
    batches = BATCHES[:2] if args.quick else [int(b) for b in args.batches.split(",")]
    time_runs(args.out, [dict(name=f"caloflow-calogan-eplus-{role}", paper_size=True, batch_sizes=(batch,),
                              repeats=2 if args.quick else RUNS[role][0][batch], warmup=RUNS[role][1])
                         for role in args.roles.split(",") for batch in batches], annotate=next_to_seed)


if __name__ == "__main__":
    main()
