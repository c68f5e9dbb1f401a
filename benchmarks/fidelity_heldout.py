"""Fidelity of shipped DS2/DS3 models on held-out GEANT4 showers, through the `calozoo` command line only.

For each dataset: `calozoo data split FILE --validation-fraction F --seed 0` rebuilds the held-out showers that
`calozoo train --heldout-fraction F --seed 0` kept out of training (DS2 0.25, DS3 0.2, the shipped recipes); the
GEANT4 floor is the training part's first rows against the held-out ones. For each model:
`calozoo generate NAME@ORIGIN:V --energies-from HELDOUT --seed 12345` and
`calozoo evaluate GEN HELDOUT -d N -m hist,cls-hgb,shape`. The rows (mean separation power, E_tot/E_inc, sparsity,
hits separation, cls-hgb AUC, hits per shower) are merged into --out under "NAME vV" (other rows are kept).

Usage: python benchmarks/fidelity_heldout.py --data 2=ds2_electrons_g4_train.h5 [--data 3=ds3_electrons_g4_train.h5]
           [--model NAME[@user|@shipped][:VERSION] ...] [--floor] [--workdir DIR]
           [--out benchmarks/fidelity_heldout.json]
"""

import argparse
import datetime
import json
import subprocess
from pathlib import Path

from calozoo.data.files import read_showers, write_showers

HELDOUT_FRACTION = {"2": 0.25, "3": 0.2}
SEED = 12345


def calozoo(*args) -> None:
    """Runs one `calozoo` command; its error line ends the benchmark."""
    command = ["calozoo", *map(str, args)]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def heldout_split(dataset: str, training_file: str, workdir: Path) -> tuple[Path, Path]:
    """(training part, held-out part) of the GEANT4 file, as `calozoo train` split it."""
    train, heldout = workdir / f"ds{dataset}_train_part.h5", workdir / f"ds{dataset}_heldout.h5"
    if not heldout.exists():
        calozoo("data", "split", training_file, "--validation-fraction", HELDOUT_FRACTION[dataset], "--seed", 0,
                "--train", train, "--validation", heldout)
    return train, heldout


def evaluated(generated: Path, heldout: Path, dataset: str, directory: Path) -> dict:
    """The table's numbers from `calozoo evaluate` (results.json) and the generated file."""
    if not (directory / "results.json").exists():
        calozoo("evaluate", generated, heldout, "-d", dataset, "-m", "hist,cls-hgb,shape", "-o", directory)
    results = json.loads((directory / "results.json").read_text())
    _, showers = read_showers(generated)
    hgb = results["cls-hgb"]
    return {"dataset": dataset, "n_per_side": int(len(showers)),
            "mean_sep": round(results["hist"]["summary"]["all_high_level"], 4),
            "etot": round(results["hist"]["separation_power"]["etot_einc"], 4),
            "sparsity": round(results["hist"]["summary"]["sparsity"], 4),
            "n_hits_sep": round(results["shape"]["separation_power"]["n_hits"], 4),
            "auc_hgb": f"{hgb['auc_mean']:.4f} +- {hgb['auc_std']:.4f}",
            "hits": round(float((showers > 0).sum(axis=1).mean()), 1)}


def floor(dataset: str, train: Path, heldout: Path, workdir: Path) -> dict:
    """GEANT4 against GEANT4: as many training-part showers as held-out ones."""
    energies, _ = read_showers(heldout)
    train_energies, train_showers = read_showers(train)
    sample = workdir / f"ds{dataset}_floor_sample.h5"
    if not sample.exists():
        write_showers(sample, train_energies[: len(energies)], train_showers[: len(energies)])
    return evaluated(sample, heldout, dataset, workdir / f"ds{dataset}_floor_evaluation")


def model_row(spec: str, heldouts: dict, workdir: Path) -> tuple[str, dict]:
    """`NAME[@user][:VERSION]` (default: the newest shipped version) generated at the held-out energies and
    evaluated."""
    import calozoo as zoo
    from calozoo.registry import resolve_artifact, split_spec

    artifact = resolve_artifact(spec)
    base, _, _ = split_spec(spec)
    dataset = zoo.get_entry(base).config["dataset"]
    label = f"{base} v{artifact.version}" + (f" ({artifact.origin})" if artifact.origin != "shipped" else "")
    stem = f"{base}_{artifact.origin}_v{artifact.version}"
    generated = workdir / f"{stem}.h5"
    if not generated.exists():
        calozoo("generate", f"{base}@{artifact.origin}:{artifact.version}", "--energies-from", heldouts[dataset],
                "--seed", SEED, "-o", generated)
    return label, evaluated(generated, heldouts[dataset], dataset, workdir / f"{stem}_evaluation")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True, metavar="DATASET=FILE",
                        help="the GEANT4 training file of a dataset, e.g. 2=ds2_electrons_g4_train.h5")
    parser.add_argument("--model", action="append", default=[], metavar="NAME[@user|@shipped][:VERSION]")
    parser.add_argument("--floor", action="store_true", help="also evaluate the GEANT4 floor of each dataset")
    parser.add_argument("--workdir", default="fidelity_heldout_work")
    parser.add_argument("--out", default="benchmarks/fidelity_heldout.json")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    files = dict(entry.split("=", 1) for entry in args.data)
    splits = {dataset: heldout_split(dataset, path, workdir) for dataset, path in files.items()}
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.exists() else {"results": {}}
    rows = report.setdefault("results", {})
    if args.floor:
        for dataset, (train, heldout) in splits.items():
            rows[f"GEANT4 floor DS{dataset}"] = floor(dataset, train, heldout, workdir)
    for spec in args.model:
        label, row = model_row(spec, {d: h for d, (_, h) in splits.items()}, workdir)
        rows[label] = row
        print(label, json.dumps(row), flush=True)
    report["date"] = datetime.date.today().isoformat()
    report["benchmark"] = "python " + " ".join(["benchmarks/fidelity_heldout.py"] + [f"--data {d}=..." for d in files])
    out.write_text(json.dumps(report, indent=1) + "\n")
    print("mean hits per held-out shower:", {d: round(float((read_showers(h)[1] > 0).sum(1).mean()), 1)
                                             for d, (_, h) in splits.items()})


if __name__ == "__main__":
    main()
