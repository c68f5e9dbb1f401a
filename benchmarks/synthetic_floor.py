"""The floor of the shipped DS1 model cards: separation powers of the synthetic generator against itself.

Usage: python benchmarks/synthetic_floor.py 1-photons ds1-photons-synthetic.h5

Takes the held-out rows of the training file (the same seeded split as `calozoo train`: fraction 0.2, seed 0),
synthesises fresh showers at the same incident energies with another seed, and prints the separation powers that a
perfect model of the synthetic showers would get at this sample size.
"""

import argparse
import json

from calozoo.data.files import read_showers
from calozoo.data.geometry import load_geometry
from calozoo.data.synthetic import synthesize_showers
from calozoo.evaluation.separation import separation_powers, summarize_separation
from calozoo.workflow.recipe import heldout_rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["1-photons", "1-pions", "2", "3"])
    parser.add_argument("file", help="the synthetic training file of the model cards")
    parser.add_argument("--heldout-fraction", type=float, default=0.2)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=999, help="seed of the fresh synthetic showers")
    args = parser.parse_args()
    energies, showers = read_showers(args.file)
    _, rows = heldout_rows(len(energies), args.heldout_fraction, args.split_seed)
    fresh = synthesize_showers(args.dataset, energies[rows], seed=args.seed)
    powers = separation_powers(fresh, energies[rows], showers[rows], energies[rows], load_geometry(args.dataset))
    print(json.dumps({"n_showers": int(len(rows)), "summary": summarize_separation(powers), "powers": powers},
                     indent=1))


if __name__ == "__main__":
    main()
