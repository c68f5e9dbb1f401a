"""Checks the alpha symmetry of DS2/DS3 shower files (the premise of `augment_alpha` training).

    python benchmarks/alpha_symmetry.py DS2_FILE DS3_FILE [-o benchmarks/alpha_symmetry.json]
"""

import argparse
import json

from calozoo.data.files import read_showers
from calozoo.data.geometry import load_geometry
from calozoo.evaluation.symmetry import alpha_symmetry_check


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="CaloChallenge DS2 or DS3 files (the dataset from the voxel count)")
    parser.add_argument("-o", "--output", default=None, help="JSON file for the results")
    args = parser.parse_args()
    by_voxels = {load_geometry(d).n_voxels: d for d in ("2", "3")}
    results = {}
    for path in args.files:
        _, showers = read_showers(path)
        dataset = by_voxels.get(showers.shape[1])
        if dataset is None:
            parser.error(f"{path}: {showers.shape[1]} voxels per shower; DS2 has 6480, DS3 40500.")
        result = alpha_symmetry_check(showers, load_geometry(dataset)).to_dict()
        results[path] = {"dataset": dataset, **result}
        print(f"{path}: DS{dataset}, {result['n_showers']} showers: max deviation of the per-alpha energy "
              f"fraction {100 * result['max_relative_deviation']:.2f} %, chi2/ndf {result['chi2']:.1f}/"
              f"{result['ndf']} (p = {result['p_value']:.3f}), dipole cos {result['dipole_cos']:+.4f} +- "
              f"{result['dipole_cos_error']:.4f}, sin {result['dipole_sin']:+.4f} +- {result['dipole_sin_error']:.4f}")
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
