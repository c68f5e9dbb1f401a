"""Where the hits of shower files sit in energy: hits per shower below and above a split energy, per file.

Used to locate the excess of hits of the iCaloFlow DS2 models (README, "Where the remaining excess of hits sits"):
generate at the held-out energies (`calozoo generate NAME --energies-from ds2_heldout.h5 --seed 12345 -o gen.h5`),
then

    python benchmarks/hit_spectrum.py ds2_heldout.h5 teacher.h5 student.h5 [--split-mev 0.3] [--floor-mev 0.1]
        [-o benchmarks/hit_spectrum.json]

A hit is a voxel above 0 MeV, as `calozoo evaluate -m shape` counts them. `--floor-mev` also reports what removing
the hits below that energy would leave (each layer rescaled to its energy before), the post-generation probe the
README describes; it writes no shower file. `by_layer_energy` gives, per bin of layer energy (`--layer-edges-mev`),
the number of layers, their mean hits and the mean share of the layer's energy in its hottest voxel: where in the
shower an excess of hits comes from. `hottest_voxels` gives the three voxel indices (inside a layer) that are most
often a non-empty layer's hottest voxel, with the share of layers each: GEANT4 spreads it over the innermost ring,
a flow whose first features in some block see no condition puts it on those few voxels, whatever the layer.
"""

import argparse
import json

import numpy as np

from calozoo.data.files import read_showers
from calozoo.data.geometry import geometry_for_voxels


def hit_spectrum(showers: np.ndarray, split_mev: float, floor_mev: float, n_layers: int,
                 edges_mev=(0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 1e3, 1e6)) -> dict:
    """Hits per shower in all, below and above `split_mev`, below `floor_mev`, and after removing those (layers
    rescaled to their energy; a layer left without hits stays empty)."""
    hits = showers > 0
    layers = showers.reshape(len(showers), n_layers, -1).astype(np.float64)
    kept = np.where(layers < floor_mev, 0.0, layers)
    emptied = (kept.sum(-1) == 0) & (layers.sum(-1) > 0)
    return {"n_showers": int(len(showers)), "hits": float(hits.sum(1).mean()),
            "hits_below_split": float((hits & (showers < split_mev)).sum(1).mean()),
            "hits_above_split": float((showers >= split_mev).sum(1).mean()),
            "hits_below_floor": float((hits & (showers < floor_mev)).sum(1).mean()),
            "hits_after_floor": float((kept > 0).sum((1, 2)).mean()),
            "layers_emptied_by_floor": float(emptied.mean()),
            "by_layer_energy": by_layer_energy(layers, edges_mev),
            "hottest_voxels": hottest_voxels(layers)}


def hottest_voxels(layers: np.ndarray, count: int = 3) -> list[dict]:
    """The `count` voxel indices most often the hottest of a non-empty layer, with their share of those layers."""
    filled = layers[layers.sum(-1) > 0]
    counts = np.bincount(np.argmax(filled, axis=-1), minlength=layers.shape[-1])
    top = np.argsort(counts, kind="stable")[::-1][:count]
    return [{"voxel": int(index), "share_of_layers": round(float(counts[index] / max(len(filled), 1)), 4)}
            for index in top]


def by_layer_energy(layers: np.ndarray, edges_mev) -> list[dict]:
    """Per bin [low, high) MeV of layer energy (empty layers excluded): layers, mean hits, mean hottest share."""
    energy = layers.sum(-1)
    hits = (layers > 0).sum(-1)
    hottest = layers.max(-1) / np.where(energy > 0, energy, 1.0)
    rows = []
    for low, high in zip(edges_mev[:-1], edges_mev[1:]):
        chosen = (energy > 0) & (energy >= low) & (energy < high)
        count = int(chosen.sum())
        rows.append({"low_mev": low, "high_mev": high, "layers": count,
                     "hits_per_layer": round(float(hits[chosen].mean()), 2) if count else None,
                     "hottest_share": round(float(hottest[chosen].mean()), 3) if count else None})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="shower files of any dataset (CaloChallenge, CaloGAN)")
    parser.add_argument("--split-mev", type=float, default=0.3, help="the energy that splits the hits in two")
    parser.add_argument("--floor-mev", type=float, default=0.1, help="the post-generation probe's floor")
    parser.add_argument("--layer-edges-mev", default="0,1,3,10,30,100,1000,1e6",
                        help="comma-separated bin edges of layer energy for by_layer_energy")
    parser.add_argument("-o", "--output", default=None, help="JSON file for the results")
    args = parser.parse_args()
    results = {}
    for path in args.files:
        _, showers = read_showers(path)
        try:
            geometry = geometry_for_voxels(showers.shape[1])
        except ValueError as error:
            parser.error(f"{path}: {error}")
        edges = [float(edge) for edge in args.layer_edges_mev.split(",")]
        result = hit_spectrum(showers, args.split_mev, args.floor_mev, len(geometry.layer_sizes), edges)
        results[path] = {"dataset": geometry.name, "split_mev": args.split_mev, "floor_mev": args.floor_mev,
                         **result}
        print(f"{path}: {result['hits']:.1f} hits per shower, {result['hits_below_split']:.1f} below "
              f"{args.split_mev} MeV and {result['hits_above_split']:.1f} above; {result['hits_below_floor']:.1f} "
              f"below {args.floor_mev} MeV, {result['hits_after_floor']:.1f} left without them")
        for row in result["by_layer_energy"]:
            print(f"  layers of [{row['low_mev']:g}, {row['high_mev']:g}) MeV: {row['layers']}, "
                  f"{row['hits_per_layer']} hits each, hottest voxel {row['hottest_share']} of the energy")
        print("  most often the hottest voxel: " + ", ".join(
            f"{row['voxel']} ({100 * row['share_of_layers']:.1f} % of layers)" for row in result["hottest_voxels"]))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
