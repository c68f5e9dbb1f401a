"""Held-out quality of the shipped CaloPointFlow models: a summary of `calozoo evaluate` runs plus the number-of-hits
separation power, for the README and the issue's closing note.

Usage: python benchmarks/calopointflow_heldout_eval.py --run NAME GENERATED HELDOUT EVALUATE_DIR [--run ...]
       [--out calopointflow_heldout_eval.json]

Each run: GENERATED = `calozoo generate NAME --energies-from HELDOUT --seed 12345 -o GENERATED`, EVALUATE_DIR =
`calozoo evaluate GENERATED HELDOUT -d DS -m hist,cls-high -o EVALUATE_DIR`; HELDOUT = `calozoo data split FILE
--validation-fraction F --seed 0 ...` (DS2 F = 0.25, DS3 F = 0.2: the rows the models never trained on). The number of
hits counts voxels above the official evaluation threshold (0.5 keV / 0.033 = 15.15 keV); its separation power uses 50
equal bins over the range of both samples (calozoo.evaluation.separation.separation_power).
"""

import argparse
import json
from pathlib import Path

import numpy as np

from calozoo.data.files import read_showers
from calozoo.data.geometry import geometry_for_voxels
from calozoo.evaluation.separation import separation_power


def hits_separation(generated: np.ndarray, reference: np.ndarray, threshold: float) -> dict:
    """Number of hits above `threshold` per shower: means and the separation power of their histograms."""
    gen_hits, ref_hits = (generated > threshold).sum(axis=1), (reference > threshold).sum(axis=1)
    edges = np.linspace(min(gen_hits.min(), ref_hits.min()), max(gen_hits.max(), ref_hits.max()) + 1, 51)
    power = separation_power(np.histogram(ref_hits, edges)[0], np.histogram(gen_hits, edges)[0])
    return {"n_hits_separation_power": float(power), "n_hits_mean_generated": float(gen_hits.mean()),
            "n_hits_mean_reference": float(ref_hits.mean())}


def summarise(name: str, generated_path, heldout_path, evaluate_dir) -> dict:
    gen_energies, generated = read_showers(generated_path)
    _, reference = read_showers(heldout_path)
    geometry = geometry_for_voxels(reference.shape[1])
    results = json.loads((Path(evaluate_dir) / "results.json").read_text())
    summary = results["hist"]["summary"]
    row = {"model": name, "generated": str(generated_path), "heldout": str(heldout_path),
           "n_showers": int(len(gen_energies)),
           "mean_separation_all_high_level": summary.get("all_high_level"),
           "etot_einc_separation_power": summary.get("etot_einc"),
           "energy_sum_ratio_generated_over_heldout": float(generated.sum() / reference.sum()),
           **hits_separation(generated, reference, geometry.evaluation_threshold_mev)}
    classifier = results.get("cls-high", {})
    row.update(cls_high_auc=classifier.get("auc_mean"), cls_high_repeats=classifier.get("repeats"),
               classifier_settings=results.get("classifier_settings"), wall_time_s=results.get("wall_time_s"))
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", nargs=4, action="append", required=True,
                        metavar=("NAME", "GENERATED", "HELDOUT", "EVALUATE_DIR"))
    parser.add_argument("--out", default="calopointflow_heldout_eval.json")
    args = parser.parse_args()
    rows = [summarise(*run) for run in args.run]
    Path(args.out).write_text(json.dumps({"description": __doc__.strip().splitlines()[0], "runs": rows}, indent=1))
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
