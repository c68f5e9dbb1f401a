"""Mean separation power and cls-high AUC of shipped models on the held-out split of the GEANT4 files, for the
issue's closing note: the convolutional L2LFlows (DS2, DS3) next to iCaloFlow DS2 on the same showers.

The held-out rows are those of `recipe.heldout_rows(n, 0.2, seed=0)` (what `calozoo train` / train_to_artifact
kept out of the L2LFlow training). They are a subset of the 25 % that the compact iCaloFlow DS2 artifacts held out
(the same seeded permutation), so none of the models saw them. Each model generates one shower per held-out
incident energy (seed 12345); both files are written to --workdir and evaluated with `calozoo evaluate`'s
function (modes hist, cls-high; official DNN settings unless --fast).

Usage: python benchmarks/l2lflow_heldout_eval.py --data 2=ds2_electrons_g4_train.h5 --data 3=ds3_electrons_g4_train.h5
           [--names NAME ...] [--fast] [--out l2lflow_heldout_eval.json]

Each --data gives the training file of one dataset (the file the artifacts were trained on).
"""

import argparse
import json
from pathlib import Path

import calozoo as zoo
from calozoo.data.files import read_showers, write_showers
from calozoo.evaluation.evaluate import evaluate, summary_rows
from calozoo.workflow.recipe import heldout_rows

NAMES = ["l2lflow-ds2-electron", "l2lflow-ds3-electron", "icaloflow-ds2-electron-student"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True, metavar="DATASET=FILE",
                        help="training file of a dataset, e.g. 2=ds2_electrons_g4_train.h5 (repeat per dataset)")
    parser.add_argument("--names", nargs="*", default=NAMES)
    parser.add_argument("--fast", action="store_true", help="small DNN classifier (not the official settings)")
    parser.add_argument("--workdir", default="/tmp/l2lflow_heldout_eval")
    parser.add_argument("--out", default="l2lflow_heldout_eval.json")
    args = parser.parse_args()
    files = dict(entry.split("=", 1) for entry in args.data)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    report = {}
    for name in args.names:
        model = zoo.load(name, dtype="float32")
        energies, showers = read_showers(files[model.dataset], n_voxels=model.n_voxels)
        _, rows = heldout_rows(len(energies), 0.2, 0)
        generated = model.generate(energies[rows], seed=12345, batch_size=1000)
        reference_file, generated_file = workdir / f"{name}_reference.h5", workdir / f"{name}_generated.h5"
        write_showers(reference_file, energies[rows], showers[rows])
        write_showers(generated_file, energies[rows], generated)
        results = evaluate(str(generated_file), str(reference_file), model.dataset, modes="hist,cls-high",
                           output_dir=str(workdir / f"{name}_evaluation"), fast=args.fast, progress=False)
        report[name] = {"n_heldout": int(len(rows)), "num_params": model.num_params,
                        "summary": dict(summary_rows(results)),
                        "cls_high_auc": results["cls-high"]["auc_mean"],
                        "mean_separation_power": results["hist"]["summary"]}
        for metric, value in summary_rows(results):
            print(f"{name:32s} {metric:60s} {value}", flush=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
