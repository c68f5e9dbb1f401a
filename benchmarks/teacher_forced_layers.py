"""iCaloFlow's Flow-3 one layer at a time, conditioned on the real previous layer (teacher forcing).

For each chosen layer n of the held-out GEANT4 showers: Flow-3 samples layer n given the real layer n-1, the real
energies E_n, E_{n-1} and E_inc, and the sample is compared with the real layer n:

- hits per layer (voxels above 0 after the 15 keV cut), data against samples;
- the mean log-density Flow-3 gives the real layers' logits and its own samples. A flow that fits its data gives
  its samples about the log-density it gives the data; samples far below the data mean that the model spreads its
  mass away from where the data sit (here: empty voxels pushed over the cut), whatever its validation NLL says;
- the hottest voxel's share of the layer energy, and the voxels holding more than 0.3 of it per layer (in all and
  outside the innermost ring): GEANT4 has few such voxels in the core of the shower; a flow with a fat upper tail
  per voxel gives a few voxels anywhere most of the layer's energy;
- the share of the layer's energy in the innermost radial bin and in the outer half of the radial bins, for the
  data, the samples, and the same draw told it is layer 1 (if the layer index steers Flow-3, that one differs).

This separates Flow-3's own leakage from errors that compound from layer to layer in generation. Used on the DS3
teachers (README, iCaloFlow DS3):

    python benchmarks/teacher_forced_layers.py MODEL [MODEL ...] --heldout ds3_heldout.h5 [--layers 2,6,12,20]
        [-o teacher_forced.json]

An existing `-o` file keeps its rows of other models (and of other layers of these models).

MODEL is anything `calozoo.registry.load` takes (NAME, NAME@user, an artifact directory).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from calozoo.data.files import read_showers
from calozoo.registry import load


def layer_report(model, incident, showers, layer: int, seed: int = 0) -> dict:
    """Teacher-forced hits and log-densities of `model`'s Flow-3 for one layer (both neighbours non-empty)."""
    previous, current = showers[:, layer - 1], showers[:, layer]
    keep = (previous.sum(-1) > 0) & (current.sum(-1) > 0)
    previous, current, incident = previous[keep], current[keep], incident[keep]
    energy = tf.constant(current.sum(-1, keepdims=True))
    previous_energy = tf.constant(previous.sum(-1, keepdims=True))
    previous_shape = model.previous_shape(tf.constant(previous), tf.constant([seed, 1]))

    def condition_as(index):
        return model.layer_condition(tf.constant(incident), energy, previous_energy, previous_shape,
                                     tf.fill([len(current)], index))

    def sample_as(index):
        sampled = model.layer_flow.sample(condition_as(index), tf.constant([seed, 2 + layer]))
        return sampled, model._layer_from_logits(sampled, energy).numpy()

    condition = condition_as(layer)
    sampled, generated = sample_as(layer)
    # The same draw told it is the first Flow-3 layer: how much the layer index steers Flow-3.
    _, as_first = sample_as(1)
    data_logits = model.shape_logit(tf.constant(current), tf.constant([seed, 3]))
    n_r = model.config.layer_bins[1]
    sides = (("data", current), ("sampled", generated), ("sampled_as_layer_1", as_first))
    return {"layer": layer, "n_showers": int(keep.sum()),
            "hits_data": float((current > 0).sum(-1).mean()), "hits_sampled": float((generated > 0).sum(-1).mean()),
            "hits_sampled_as_layer_1": float((as_first > 0).sum(-1).mean()),
            "log_prob_data": float(tf.reduce_mean(model.layer_flow.log_prob(data_logits, condition))),
            "log_prob_samples": float(tf.reduce_mean(model.layer_flow.log_prob(sampled, condition))),
            **{f"{key}_{side}": value for side, layer_mev in sides[:2]
               for key, value in largest_voxels(layer_mev, n_r).items()},
            **{f"{key}_{side}": value for side, layer_mev in sides
               for key, value in radial_shares(layer_mev, n_r).items()}}


def radial_shares(layer_mev: np.ndarray, n_r: int) -> dict:
    """Share of all the showers' energy in this layer in the innermost radial bin and in the outer half of the
    radial bins (voxel index alpha * n_r + r): GEANT4's layers narrow near the front and widen with depth."""
    per_r = layer_mev.reshape(len(layer_mev), -1, n_r).sum(axis=(0, 1))
    total = max(float(per_r.sum()), 1e-30)
    return {"innermost_share": round(float(per_r[0]) / total, 4),
            "outer_half_share": round(float(per_r[(n_r + 1) // 2:].sum()) / total, 4)}


def largest_voxels(layer_mev: np.ndarray, n_r: int) -> dict:
    """Mean hottest-voxel share, and voxels above 0.3 of the layer per layer, in all and outside radial bin 0
    (voxel index alpha * n_r + r); layers without energy count as no such voxel."""
    energy = layer_mev.sum(-1, keepdims=True)
    share = np.where(energy > 0, layer_mev / np.where(energy > 0, energy, 1.0), 0.0)
    large = share > 0.3
    outer = large & (np.arange(layer_mev.shape[-1]) % n_r > 0)
    return {"hottest_share": round(float(share.max(-1).mean()), 4),
            "large_voxels": round(float(large.sum(-1).mean()), 3),
            "large_voxels_outside_axis": round(float(outer.sum(-1).mean()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--layers", default="2,6,12,20")
    parser.add_argument("-o", "--out")
    args = parser.parse_args()
    incident, showers = read_showers(args.heldout)
    results = []
    for name in args.models:
        model = load(name, dtype="float32")
        layers = showers.reshape(len(showers), model.n_layers, -1).astype(np.float32)
        for layer in map(int, args.layers.split(",")):
            row = {"model": name, **layer_report(model, incident.astype(np.float32), layers, layer)}
            results.append(row)
            print(f"{name} layer {layer}: hits {row['hits_data']:.1f} (data) / {row['hits_sampled']:.1f} (sampled); "
                  f"log-density {row['log_prob_data']:.1f} (data) / {row['log_prob_samples']:.1f} (samples); "
                  f"hottest share {row['hottest_share_data']:.3f} / {row['hottest_share_sampled']:.3f}, voxels "
                  f"above 0.3 {row['large_voxels_data']:.2f} / {row['large_voxels_sampled']:.2f}; innermost ring "
                  f"{row['innermost_share_data']:.3f} / {row['innermost_share_sampled']:.3f} (told layer 1: "
                  f"{row['innermost_share_sampled_as_layer_1']:.3f}), outer half {row['outer_half_share_data']:.3f} / "
                  f"{row['outer_half_share_sampled']:.3f}", flush=True)
    if args.out:
        write_merged(Path(args.out), args.heldout, results)


def write_merged(path: Path, heldout: str, results: list[dict]) -> None:
    """Writes `results` into `path`, keeping the rows of an existing file that these do not replace."""
    existing = json.loads(path.read_text()) if path.is_file() else {}
    fresh = {(row["model"], row["layer"]) for row in results}
    kept = [row for row in existing.get("results", []) if (row["model"], row["layer"]) not in fresh]
    path.write_text(json.dumps({**existing, "heldout": heldout, "results": kept + results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
